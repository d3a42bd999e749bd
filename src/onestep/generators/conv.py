"""A small residual convolutional one-step generator.

    features -> conv 3x3 -> depth x ResnetBlock(width) -> GroupNorm, SiLU -> conv 3x3 -> latent

It maps the codec's features to the autoencoder's latent in one call, like the SD UNet generator but with
no attention and no timestep: a real generator for small models and tests. The cross-attention
`context` is accepted for the interface and not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.norm import group_norm
from ..nn.resnet import ResnetBlock
from .base import Generator


class ConvGenerator(Generator):
    def __init__(self, in_channels: int, out_channels: int, width: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*(ResnetBlock(width) for _ in range(depth)))
        self.norm_out = group_norm(width)
        self.conv_out = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, features: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.blocks(self.conv_in(features))
        return self.conv_out(F.silu(self.norm_out(h)))
