"""Side-by-side crops of the default model for its model card (not run by CI).

    python benchmarks/avif_restore_crops.py --model src/onestep/weights/onestep-avif-restore-1.2 \
        -o results/avif-restore-1.2-kodak/crops

For each image and quality: one row of 192 x 192 crops, original | AVIF of the image downscaled by the base
layer's divisor (the eval's `avif-down2` / `avif-down4` baseline: Lanczos both ways, Pillow's default encoder
settings, the largest quality whose file is not larger than ours) | the model's base layer alone (what the
generator sees) | the model's output. Written at 1x and at 2x (nearest neighbour); each file's bpp on the whole
image in `crops.txt`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from onestep import api
from onestep.bitstream import read_container
from onestep.codecs.avif_base import SECTION
from onestep.eval.baselines import any_baseline
from onestep.images import read_image

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
# (image, crop top, crop left): a face, feathers and an eye, facades with fine lines
CROPS = (("kodim15", 120, 300), ("kodim23", 150, 330), ("kodim08", 40, 200))
SIDE = 192


def downscaled_avif(image: torch.Tensor, divisor: int, max_bytes: int) -> tuple[np.ndarray, int]:
    """The eval's `avif-down<divisor>` baseline at the largest quality (in steps of 2) whose file is not larger
    than `max_bytes` (quality 0 when none fits): (full-size pixels, bytes)."""
    trick = any_baseline(f"avif-down{divisor}")
    best = (trick.encode(0, image), 0)
    for quality in range(2, 101, 2):
        data = trick.encode(quality, image)
        if len(data) > max_bytes:
            break
        best = (data, quality)
    return trick.decode(best[1], best[0]).permute(1, 2, 0).numpy(), len(best[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--qualities", default="1,4,6")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = api.load_model(args.model)
    args.output.mkdir(parents=True, exist_ok=True)
    notes = []
    for name, top, left in CROPS:
        image = read_image(KODAK / f"{name}.png")
        array = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        h, w = array.shape[:2]
        window = (slice(top, top + SIDE), slice(left, left + SIDE))
        rows = []
        for quality in (int(q) for q in args.qualities.split(",")):
            data = api.compress(model, image, quality=quality)
            ours = api.decompress(model, data).permute(1, 2, 0).numpy()
            _, encoded = read_container(data)  # the base layer the generator saw, from the file itself
            base, _, _ = model.codec.decode_base(encoded.sections[SECTION], (h, w))
            divisor = model.codec.levels[quality][0]
            trick, trick_bytes = downscaled_avif(image, divisor, len(data))
            rows.append(np.concatenate([array[window], trick[window], base[window], ours[window]], axis=1))
            notes.append(
                f"{name} q{quality}: ours {8 * len(data) / (h * w):.4f} bpp (base layer 1/{divisor}); AVIF of the "
                f"image down {divisor}x {8 * trick_bytes / (h * w):.4f} bpp"
            )
        sheet = Image.fromarray(np.concatenate(rows, axis=0))
        stem = f"{name}-q{'-q'.join(args.qualities.split(','))}"
        sheet.save(args.output / f"{stem}-1x.png")
        sheet.resize((sheet.width * 2, sheet.height * 2), Image.Resampling.NEAREST).save(args.output / f"{stem}-2x.png")
    text = "columns: original | AVIF of the image downscaled, at no more bytes | our base layer alone | ours\n"
    (args.output / "crops.txt").write_text(text + "\n".join(notes) + "\n")
    print(text + "\n".join(notes))


if __name__ == "__main__":
    main()
