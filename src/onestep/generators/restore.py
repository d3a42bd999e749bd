"""A one-step restoration generator: a decoded (upsampled) base image -> a restored image, in one call.

    x -> pixel-unshuffle 4 -> conv 3x3 -> depth x [conv 3x3, FiLM(condition), LeakyReLU, conv 3x3] (+ skip)
      -> conv 3x3 -> pixel-shuffle 4 [-> conv 3x3 at full resolution] -> x + residual

Everything runs at 1/4 resolution (48 channels of 4x4 pixel blocks), which is what makes a 768x512 decode fit
in a tenth of a second on one CPU thread. There is no normalisation over the image and no attention: every
output pixel depends only on a fixed neighbourhood (`receptive_radius`), so decoding in overlapping tiles
gives the same pixels as one pass (the pipeline's tiles carry a 64-pixel halo, more than the radius), and
memory stays bounded for any size.
The condition (`context`, B x 1 x K: a one-hot of the base layer's quality index and a grey flag) sets a
per-channel scale and shift in every block. The last convolution and the FiLM layer start at zero, so an
untrained generator returns its input: training starts from the base layer, not from noise. A grey input
with the grey flag set gives an exactly grey output.
Each of the 16 pixel positions of a 4x4 block gets its residual from its own output weights, so any error
those weights share shows as a fixed 4x4 pattern; `output_filter` adds one 3x3 convolution at full resolution
on the residual (starting as the identity, 3 -> 3 channels, negligible cost) that can blend neighbouring
positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Generator

BLOCK = 4  # pixel-unshuffle factor


class ConditionedBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x) * (1 + scale) + shift
        return x + self.conv2(F.leaky_relu(h, 0.2))


class RestorationGenerator(Generator):
    """`condition_channels`: width of the context vector (the codec's `condition_channels`)."""

    def __init__(self, condition_channels: int, width: int = 48, depth: int = 3, output_filter: bool = False) -> None:
        super().__init__()
        channels = 3 * BLOCK * BLOCK
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(ConditionedBlock(width) for _ in range(depth))
        self.film = nn.Linear(condition_channels, 2 * width * depth)
        self.conv_out = nn.Conv2d(width, channels, 3, padding=1)
        for layer in (self.film, self.conv_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.output_filter = nn.Conv2d(3, 3, 3, padding=1, bias=False) if output_filter else None
        if self.output_filter is not None:
            nn.init.dirac_(self.output_filter.weight)

    @property
    def receptive_radius(self) -> int:
        """How far (in pixels) an output pixel sees: every 3x3 convolution at 1/4 resolution adds 4 pixels,
        the 4x4 blocks add 3 more."""
        convolutions = 2 + 2 * len(self.blocks)
        return convolutions * BLOCK + BLOCK - 1 + (self.output_filter is not None)

    def restore(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        film = self.film(context[:, 0].to(x.dtype)).view(x.shape[0], len(self.blocks), 2, -1, 1, 1)
        h = self.conv_in(F.pixel_unshuffle(x, BLOCK))
        for i, block in enumerate(self.blocks):
            h = block(h, film[:, i, 0], film[:, i, 1])
        residual = F.pixel_shuffle(self.conv_out(F.leaky_relu(h, 0.2)), BLOCK)
        if self.output_filter is not None:
            residual = self.output_filter(residual)
        out = x + residual
        grey = context[:, 0, -1].to(x.dtype).view(-1, 1, 1, 1)
        return grey * out.mean(dim=1, keepdim=True) + (1 - grey) * out

    def forward(self, features: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            raise ValueError("the restoration generator needs the base layer's condition as context")
        h, w = features.shape[-2:]
        if h % BLOCK or w % BLOCK:
            raise ValueError(f"image sides must be multiples of {BLOCK}, got {w}x{h}")
        return self.restore(features, context)
