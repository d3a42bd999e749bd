"""The Codeformer head of OneDC's semantic distillation (digest §5.9), with configurable widths.

    y_semantic (/64) -> up_sample (DCB4, 1x1 to 4C, PixelShuffle 2, DCB4) -> /32
    -> `blocks` x DualSwinBlock (window attention, then shifted-window attention)
    -> mlp_head (1x1 4C, GN, GELU, 1x1 C, GN, GELU, 1x1 to the number of codes) -> logits over the codes

Reference widths: in 768, dim 768, 12 heads, 3 blocks, window 16, MLP 4x, 1024 codes. Feature maps
whose sides are not multiples of the window are zero-padded for attention and cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.depth_conv import DepthConvBlock

MASKED = -100.0  # added to attention logits between tokens of different regions in a shifted window


class WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shifted: bool, position_bias: bool) -> None:
        super().__init__()
        self.heads, self.window, self.shifted = heads, window, shifted
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.position_bias = nn.Parameter(torch.zeros(window**2, window**2)) if position_bias else None

    def _shift_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """Swin's mask: after the cyclic roll, tokens from different image regions must not attend."""
        ws, s = self.window, self.window // 2
        regions = torch.zeros(h, w, device=device)
        label = 0
        for rows in (slice(0, h - ws), slice(h - ws, h - s), slice(h - s, h)):
            for cols in (slice(0, w - ws), slice(w - ws, w - s), slice(w - s, w)):
                regions[rows, cols] = label
                label += 1
        windows = self._partition(regions[None, :, :, None]).squeeze(-1)  # nW x ws^2
        return (windows[:, :, None] != windows[:, None, :]).float() * MASKED

    def _partition(self, x: torch.Tensor) -> torch.Tensor:
        """B x H x W x C -> (B nW) x ws^2 x C."""
        b, h, w, c = x.shape
        ws = self.window
        x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(-1, ws * ws, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B x H x W x C with H, W multiples of the window."""
        b, h, w, c = x.shape
        ws = self.window
        if self.shifted:
            x = x.roll((-(ws // 2), -(ws // 2)), dims=(1, 2))
        q, k, v = self._partition(self.to_qkv(x)).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        bias = torch.zeros(ws * ws, ws * ws, device=x.device, dtype=q.dtype)
        if self.position_bias is not None:
            bias = bias + self.position_bias.to(q.dtype)
        if self.shifted:
            mask = self._shift_mask(h, w, x.device).to(q.dtype)  # nW x T x T
            bias = (bias + mask).repeat(b, 1, 1)[:, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = self.to_out(out.transpose(1, 2).flatten(2))
        out = out.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        if self.shifted:
            out = out.roll((ws // 2, ws // 2), dims=(1, 2))
        return out


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int, window: int, shifted: bool, position_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = WindowAttention(dim, heads, window, shifted, position_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DualSwinBlock(nn.Module):
    """A window block then a shifted-window block, on B x C x H x W maps."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, window: int, position_bias: bool) -> None:
        super().__init__()
        self.window = window
        self.plain = SwinBlock(dim, heads, mlp_dim, window, shifted=False, position_bias=position_bias)
        self.shifted = SwinBlock(dim, heads, mlp_dim, window, shifted=True, position_bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ws = self.window
        x = F.pad(x, (0, -w % ws, 0, -h % ws)).permute(0, 2, 3, 1)
        x = self.shifted(self.plain(x))
        return x.permute(0, 3, 1, 2)[..., :h, :w]


class Codeformer(nn.Module):
    """y_semantic (B x in_dim x h x w) -> logits over `codes` at twice the resolution (B x codes x 2h x 2w)."""

    def __init__(
        self,
        in_dim: int = 768,
        dim: int = 768,
        codes: int = 1024,
        heads: int = 12,
        blocks: int = 3,
        window: int = 16,
        mlp_ratio: int = 4,
    ) -> None:
        super().__init__()
        self.up_sample = nn.Sequential(
            DepthConvBlock(in_dim, dim), nn.Conv2d(dim, 4 * dim, 1), nn.PixelShuffle(2), DepthConvBlock(dim)
        )
        self.blocks = nn.Sequential(
            *(DualSwinBlock(dim, heads, mlp_ratio * dim, window, position_bias=i == 0) for i in range(blocks))
        )
        groups = 16 if dim % 16 == 0 else 1
        self.mlp_head = nn.Sequential(
            nn.Conv2d(dim, 4 * dim, 1),
            nn.GroupNorm(groups, 4 * dim),
            nn.GELU(),
            nn.Conv2d(4 * dim, dim, 1),
            nn.GroupNorm(groups, dim),
            nn.GELU(),
            nn.Conv2d(dim, codes, 1),
        )

    def forward(self, y_semantic: torch.Tensor) -> torch.Tensor:
        return self.mlp_head(self.blocks(self.up_sample(y_semantic)))
