"""The image set an evaluation runs on: a folder of images, read once, each with a content hash."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ImageError
from ..images import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class EvalImage:
    name: str  # file stem, unique within the folder
    pixels: torch.Tensor  # 3 x H x W uint8
    digest: str  # hash of the decoded pixels: the cache key, independent of the file's format

    @property
    def num_pixels(self) -> int:
        return int(self.pixels.shape[1] * self.pixels.shape[2])


def pixel_digest(pixels: torch.Tensor) -> str:
    digest = hashlib.sha256(f"{tuple(pixels.shape)}".encode())
    digest.update(pixels.contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def load_folder(folder: str | os.PathLike[str], limit: int | None = None) -> list[EvalImage]:
    """Images of a folder in name order (the first `limit` if given)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"image folder {folder} does not exist")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ImageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    images = []
    for path in paths[:limit]:
        pixels = read_image(path)
        images.append(EvalImage(path.stem, pixels, pixel_digest(pixels)))
    if len({image.name for image in images}) != len(images):
        raise ImageError(f"{folder} holds several images with the same name stem")
    return images
