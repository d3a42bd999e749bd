"""DCVC-DC's depthwise block: `DepthConvBlock4` = DepthConv followed by ConvFFN3 (called DCB4 in the docs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DepthConv(nn.Module):
    """1x1 + LeakyReLU(0.01), depthwise 3x3, 1x1 to the output width; residual (through a 1x1 adaptor
    when the widths differ)."""

    def __init__(self, in_channels: int, out_channels: int, slope: float = 0.01) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, in_channels, 1), nn.LeakyReLU(slope))
        self.depth_conv = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 1)
        self.adaptor = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.adaptor is None else self.adaptor(x)
        return identity + self.conv2(self.depth_conv(self.conv1(x)))


class ConvFFN3(nn.Module):
    """1x1 to 4C, two halves through LeakyReLU 0.1 and 0.01, summed, 1x1 back to C; residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 4 * channels, 1)
        self.conv_out = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x).chunk(2, dim=1)
        return x + self.conv_out(F.leaky_relu(a, 0.1) + F.leaky_relu(b, 0.01))


class DepthConvBlock(nn.Module):
    """DCB4: `block = Sequential(DepthConv(in, out), ConvFFN3(out))`."""

    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.block = nn.Sequential(DepthConv(in_channels, out_channels), ConvFFN3(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)
