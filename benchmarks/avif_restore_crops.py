"""Side-by-side crops of the default model for its model card (not run by CI).

    python benchmarks/avif_restore_crops.py --model src/onestep/weights/onestep-avif-restore-1.2 \
        -o results/avif-restore-1.2-kodak/crops

For each image and quality: one row of 192 x 192 crops, original | AVIF of the image downscaled by the base
layer's divisor (Lanczos both ways, Pillow's default encoder settings, the largest quality whose file is not
larger than ours) | the model's base layer alone (what the generator sees) | the model's output. Written at 1x
and at 2x (nearest neighbour), with each crop's bpp on the whole image in the file name's text file.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from onestep import api
from onestep.images import read_image

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
# (image, crop top, crop left): a face, feathers and an eye, facades with fine lines
CROPS = (("kodim15", 120, 300), ("kodim23", 150, 330), ("kodim08", 40, 200))
SIDE = 192


def downscaled_avif(array: np.ndarray, divisor: int, max_bytes: int) -> tuple[np.ndarray, int]:
    """AVIF of the image reduced `divisor` times at the largest quality that fits `max_bytes`, back to full
    size; (pixels, bytes). Falls back to quality 0 when nothing fits."""
    h, w = array.shape[:2]
    small = Image.fromarray(array).resize((w // divisor, h // divisor), Image.Resampling.LANCZOS)
    best: tuple[bytes, int] | None = None
    for quality in range(0, 101, 2):
        buffer = io.BytesIO()
        small.save(buffer, format="AVIF", quality=quality)
        if len(buffer.getvalue()) > max_bytes and best is not None:
            break
        best = (buffer.getvalue(), quality)
    assert best is not None
    decoded = Image.open(io.BytesIO(best[0])).convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
    return np.asarray(decoded), len(best[0])


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
            section = model.codec.compress(image[None].float() / 127.5 - 1, None, quality=quality)["base"]  # type: ignore[arg-type]
            base, _, _ = model.codec.decode_base(section, (h, w))
            divisor = model.codec.levels[quality][0]
            trick, trick_bytes = downscaled_avif(array, divisor, len(data))
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
