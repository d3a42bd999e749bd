"""Training pairs for the AVIF-restoration model: (AVIF base layer at every quality, original) crops.

AV1 encoding costs far more than a training step, so the base layers are made once: one square crop per
training image (a multiple of the codec's padding), coded at every quality level with the very codec the
model uses, stored as `<index>.npz` with the original crop (`target`) and each section payload (`q<i>`,
uint8). Training decodes a payload (a few ms) and takes aligned sub-crops.

    python -m onestep.methods.avif_restore.pairs ../shared/data/train -o packed/avif-pairs --workers 2
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from ...images import read_image
from .model import base_codec

CROP = 256
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm")


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def square_crop(array: np.ndarray, side: int, rng: random.Random, multiple: int) -> np.ndarray:
    h, w = array.shape[:2]
    side = min(side, h // multiple * multiple, w // multiple * multiple)
    top = rng.randrange(0, (h - side) // multiple + 1) * multiple
    left = rng.randrange(0, (w - side) // multiple + 1) * multiple
    return np.ascontiguousarray(array[top : top + side, left : left + side])


def make_pair(job: tuple[int, Path, Path]) -> str:
    index, source, out = job
    target_file = out / f"{index:05d}.npz"
    if target_file.exists():
        return "kept"
    codec = base_codec()
    array = read_image(source).permute(1, 2, 0).numpy()
    crop = square_crop(array, CROP, random.Random(index), codec.pad_multiple)
    payloads = {f"q{q}": np.frombuffer(codec.encode_base(crop, q), dtype=np.uint8) for q in codec.qualities}
    tmp = out / f".{index:05d}.tmp.npz"
    np.savez(tmp, target=crop, **payloads)
    tmp.replace(target_file)
    return "made"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    files = list_images(args.root)
    # Shuffled order, so that a trainer reading a partial cache sees every source folder.
    jobs = [(i, f, args.out) for i, f in enumerate(files)]
    random.Random(0).shuffle(jobs)
    with Pool(args.workers) as pool:
        for n, _ in enumerate(pool.imap_unordered(make_pair, jobs, chunksize=4), 1):
            if n % 100 == 0:
                print(f"{n}/{len(jobs)} pairs", flush=True)


if __name__ == "__main__":
    main()
