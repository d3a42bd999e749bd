"""Sub-pixel (PixelShuffle) upsamplers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def subpixel_conv1x1(in_channels: int, out_channels: int, factor: int = 2) -> nn.Sequential:
    """1x1 conv to out * factor^2 channels, then PixelShuffle."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels * factor**2, 1), nn.PixelShuffle(factor))


def subpixel_upsample_layers(in_channels: int, out_channels: int) -> list[nn.Module]:
    """x2 upsampling as three layers (1x1 to 4C, PixelShuffle, 3x3 to out), to splice into a Sequential
    (the reference's `get_upsample`, whose layer indices are part of the checkpoint keys)."""
    return [
        nn.Conv2d(in_channels, 4 * in_channels, 1),
        nn.PixelShuffle(2),
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
    ]


class ResidualBlockUpsample(nn.Module):
    """x`factor` upsampling with two sub-pixel paths: (sub-pixel, LeakyReLU 0.01, 3x3, LeakyReLU 0.1) plus a
    second sub-pixel projection as the skip."""

    def __init__(self, in_channels: int, out_channels: int, factor: int = 2) -> None:
        super().__init__()
        self.subpel_conv = subpixel_conv1x1(in_channels, out_channels, factor)
        self.conv = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.upsample = subpixel_conv1x1(in_channels, out_channels, factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv(F.leaky_relu(self.subpel_conv(x), 0.01)), 0.1)
        return out + self.upsample(x)
