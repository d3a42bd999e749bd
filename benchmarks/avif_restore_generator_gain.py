"""What the restoration generator adds to its own base layer, per quality level (not run by CI).

    python benchmarks/avif_restore_generator_gain.py runs/avif-restore-1.1/checkpoint.pt

Six Kodak images (every 4th from the 2nd), each coded at every level with the model's codec; printed: the
mean change (generator output minus base layer) of PSNR, SSIMULACRA2 and ENL2-dist (lower is better).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from onestep.codecs.avif_base import array_to_image, image_to_array
from onestep.eval.metrics import build_suite
from onestep.methods.avif_restore.model import avif_restore_model

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
METRICS = ("psnr-rgb", "ssimulacra2", "enl2-dist")


def main() -> None:
    torch.set_num_threads(1)
    suite = build_suite(list(METRICS))
    model = avif_restore_model("full").eval()
    state = torch.load(sys.argv[1], weights_only=True)  # tensors only
    model.generator.load_state_dict(state["ema"])
    print("step", state["step"])
    changes: dict[tuple[int, str], list[float]] = {}
    for path in sorted(KODAK.glob("*.png"))[1::4]:
        array = np.asarray(Image.open(path).convert("RGB"))
        reference = torch.from_numpy(array.copy()).permute(2, 0, 1)
        prepared = [m.prepare(reference) for m in suite.image_metrics]
        for quality in model.codec.qualities:
            base, _, _ = model.codec.decode_base(model.codec.encode_base(array, quality), array.shape[:2])
            with torch.no_grad():
                out = model.generator(array_to_image(base)[None], model.codec.condition(quality, False))[0]
            restored = torch.from_numpy(image_to_array(out)).permute(2, 0, 1)
            base_pixels = torch.from_numpy(base.copy()).permute(2, 0, 1)
            for metric, p in zip(suite.image_metrics, prepared):
                change = metric.measure(p, restored) - metric.measure(p, base_pixels)
                changes.setdefault((quality, metric.info.key), []).append(change)
    for quality in model.codec.qualities:
        values = " ".join(f"{k}:{np.mean(changes[(quality, k)]):+.3f}" for k in METRICS)
        print(quality, model.codec.levels[quality], values)


if __name__ == "__main__":
    main()
