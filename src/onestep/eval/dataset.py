"""The image set an evaluation runs on: a folder of images, read once, each with a content hash, prepared
by a named protocol from the papers (PROTOCOLS):

- `kodak`: the images as they are (Kodak: 24 images of 768 x 512 in either orientation);
- `clic2020`: as the CLIC2020 evaluations of HiFiC, MS-ILLM and one-step diffusion codecs: the short side resized to 768
  (bicubic, antialiased), then the centre 768 x 768 crop;
- `full`: full images of any size, as they are.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, ImageError
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


CLIC_SIDE = 768
PROTOCOLS = {
    "kodak": "images as they are (Kodak: 24 images of 768 x 512, either orientation)",
    "clic2020": f"CLIC2020-style: short side resized to {CLIC_SIDE} (bicubic, antialiased), centre crop "
    f"{CLIC_SIDE} x {CLIC_SIDE}",
    "full": "full images of any size, as they are",
}


def resize_and_centre_crop(pixels: torch.Tensor, side: int = CLIC_SIDE) -> torch.Tensor:
    """Short side to `side` (bicubic), then the centre side x side crop."""
    height, width = pixels.shape[1:]
    scale = side / min(height, width)
    size = (max(side, round(width * scale)), max(side, round(height * scale)))
    image = Image.fromarray(pixels.permute(1, 2, 0).numpy()).resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - side) // 2, (size[1] - side) // 2
    array = np.asarray(image.crop((left, top, left + side, top + side)))
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def apply_protocol(pixels: torch.Tensor, protocol: str) -> torch.Tensor:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    return resize_and_centre_crop(pixels) if protocol == "clic2020" else pixels


def load_folder(folder: str | os.PathLike[str], limit: int | None = None, protocol: str = "full") -> list[EvalImage]:
    """Images of a folder in name order (the first `limit` if given), prepared by `protocol`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"image folder {folder} does not exist")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ImageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    images = []
    for path in paths[:limit]:
        pixels = apply_protocol(read_image(path), protocol)
        images.append(EvalImage(path.stem, pixels, pixel_digest(pixels)))
    if len({image.name for image in images}) != len(images):
        raise ImageError(f"{folder} holds several images with the same name stem")
    return images
