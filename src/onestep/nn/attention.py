"""Single-head global spatial self-attention (taming-style `AttnBlock`).

Computed with `scaled_dot_product_attention`, so large inputs never materialise the HW x HW matrix
when a memory-efficient kernel is available."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .norm import group_norm


class AttnBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x_norm = self.norm(x)

        def tokens(conv: nn.Conv2d) -> torch.Tensor:  # B x 1 head x HW x C
            return conv(x_norm).reshape(b, 1, c, h * w).transpose(-1, -2)

        out = F.scaled_dot_product_attention(tokens(self.q), tokens(self.k), tokens(self.v))  # scale 1/sqrt(C)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj_out(out)
