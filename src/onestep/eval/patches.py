"""Patches for distribution metrics (FID, KID, FD-ENL0) on few, large images.

The protocol of Mentzer et al. (2020), "FID/256", as the one-step codecs' evaluations run it: tile each image
into non-overlapping p x p patches, then tile it again after cropping u * p / split pixels from
the top and left for u = 1 .. split - 1, a pass that only happens when both sides are at least
(2 - u / split) * p. With the defaults (p = 256, split = 2) a 768 x 512 Kodak image gives
6 + 2 = 8 patches.
"""

from __future__ import annotations

import torch

PATCH_SIZE = 256
SPLIT = 2


def _tile(image: torch.Tensor, size: int) -> torch.Tensor:
    """Non-overlapping size x size tiles, row-major (as F.unfold orders them): N x C x size x size."""
    channels, height, width = image.shape
    rows, cols = height // size, width // size
    tiles = image[:, : rows * size, : cols * size].reshape(channels, rows, size, cols, size)
    return tiles.permute(1, 3, 0, 2, 4).reshape(rows * cols, channels, size, size)


def fid_patches(image: torch.Tensor, size: int = PATCH_SIZE, split: int = SPLIT) -> torch.Tensor:
    """All patches of one C x H x W image under the FID/256 protocol (dtype kept)."""
    if image.dim() != 3:
        raise ValueError(f"expected a C x H x W image, got shape {tuple(image.shape)}")
    height, width = image.shape[1:]
    parts = [_tile(image, size)]
    for u in range(1, split):
        if min(height, width) >= (2 - u / split) * size:
            offset = u * size // split
            parts.append(_tile(image[:, offset:, offset:], size))
    return torch.cat(parts)
