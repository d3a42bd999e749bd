"""Taming-style residual block (as in the taming VQGAN family, e.g. the MaskGIT VQGAN, and codecs built from it).

Quirk kept on purpose: when the widths differ, the 1x1 `nin_shortcut` is applied to the block's
*output* h (out -> out), giving h + W h with no path from the input. Trained weights depend on it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .norm import group_norm


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.nin_shortcut = (
            nn.Conv2d(out_channels, out_channels, 1, bias=False) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.nin_shortcut is not None:
            return h + self.nin_shortcut(h)
        return x + h
