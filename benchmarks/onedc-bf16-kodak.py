"""OneDC's bfloat16 rendering against float32 on Kodak images, stage by stage (not run by CI).

    python benchmarks/onedc-bf16-kodak.py --work DIR [--images kodim01 kodim05 ...] [--threads 2] \
        [--out benchmarks/onedc-bf16-kodak.json]

DIR is the work folder of a benchmarks/onedc-reference-equivalence.py run: its `onestep-model/` is the full
OneDC with the harness's seeded random weights in the released layout (the released weights are not on this
machine). Each image (768x512, Kodak's landscape ones) is compressed once (normal mode); its stream is then
decoded with float32 rendering and, in the same process after `set_render_dtype(torch.bfloat16)`, with
bfloat16 rendering. Recorded per image: the generator's output x0 (the latent, before the autoencoder's
decoder) bf16 vs float32 (max and RMS absolute difference, and x0's own RMS for scale), the pixels (max grey
level difference, mean, share of values more than 1 and 2 levels off), and each decode's wall time. With
random weights the decoded images are noise-like rather than photographs, so the pixel figures measure the
precision of the arithmetic on these weights, not the look of bf16 on the released model.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from onedc_run_info import run_info

from onestep.images import read_image
from onestep.methods.pipeline import OneStepPipeline

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT / ".." / "shared" / "data" / "kodak"


def decode_all(model: OneStepPipeline, streams: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """name -> (x0, pixels, seconds) for each stream."""
    captured: list[torch.Tensor] = []
    hook = model.generator.register_forward_hook(lambda _, __, out: captured.append(out.detach().float().clone()))
    results = {}
    try:
        for name, encoded in streams.items():
            captured.clear()
            start = time.perf_counter()
            pixels = model.decompress(encoded)
            results[name] = (captured[-1], pixels, time.perf_counter() - start)
    finally:
        hook.remove()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/onedc-equivalence"))
    parser.add_argument("--images", nargs="+", default=["kodim01", "kodim05", "kodim13", "kodim23"])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "onedc-bf16-kodak.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = OneStepPipeline.from_pretrained(args.work / "onestep-model").eval()
    streams = {}
    for name in args.images:
        image = read_image(KODAK / f"{name}.png")
        if tuple(image.shape[-2:]) != (512, 768):
            raise SystemExit(f"{name} is not a 768x512 landscape image")
        streams[name] = model.compress(image)
    load_before = os.getloadavg()[0]
    float32 = decode_all(model, streams)
    model.set_render_dtype(torch.bfloat16)
    bfloat16 = decode_all(model, streams)
    per_image = {}
    for name in streams:
        (x0, pixels, seconds), (x0_b, pixels_b, seconds_b) = float32[name], bfloat16[name]
        levels = (pixels.int() - pixels_b.int()).abs()
        per_image[name] = {
            "x0_max_abs_diff": (x0 - x0_b).abs().max().item(),
            "x0_rms_diff": (x0 - x0_b).pow(2).mean().sqrt().item(),
            "x0_rms": x0.pow(2).mean().sqrt().item(),
            "grey_levels_max_diff": levels.max().item(),
            "grey_levels_mean_diff": levels.float().mean().item(),
            "share_over_1_level": (levels > 1).float().mean().item(),
            "share_over_2_levels": (levels > 2).float().mean().item(),
            "decode_float32_s": seconds,
            "decode_bfloat16_s": seconds_b,
        }
    result = {
        **run_info(
            "bf16 vs float32 rendering of the same OneDC streams (harness's seeded random weights), Kodak",
            args.work,
            args.threads,
            "decodes",
            load_before,
        ),
        "per_image": per_image,
        "worst": {
            key: max(v[key] for v in per_image.values())
            for key in ("x0_max_abs_diff", "grey_levels_max_diff", "share_over_2_levels")
        },
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
