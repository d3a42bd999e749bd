"""Self-attention within fixed-size windows of a feature map: the KL autoencoder's windowed mid-block attention.

The map is cut into `window x window` tiles starting at the top-left corner; the tiles on the right and
bottom edges are smaller when a side is not a multiple of the window. Each tile goes through the
attention module on its own, so the module's built-in GroupNorm computes its statistics per tile,
exactly as the reference's loop over windows does.

Tiles of equal shape are batched, so a map needs at most four attention calls: the full tiles,
the right strip, the bottom strip and the bottom-right corner.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0


def _to_tiles(x: torch.Tensor, tile_h: int, tile_w: int) -> torch.Tensor:
    """B x C x (R*th) x (K*tw) -> (B*R*K) x C x th x tw, tiles in row-major order per image."""
    b, c, h, w = x.shape
    rows, cols = h // tile_h, w // tile_w
    x = x.reshape(b, c, rows, tile_h, cols, tile_w).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * rows * cols, c, tile_h, tile_w).contiguous()  # the attention processor needs .view()


def _from_tiles(tiles: torch.Tensor, batch: int, rows: int, cols: int) -> torch.Tensor:
    """Inverse of `_to_tiles`."""
    _, c, tile_h, tile_w = tiles.shape
    x = tiles.reshape(batch, rows, cols, c, tile_h, tile_w).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(batch, c, rows * tile_h, cols * tile_w)


def _bands(size: int, window: int) -> list[tuple[int, int, int]]:
    """(start, stop, tile size) of the full-window band and of the remainder band, skipping empty ones."""
    full = size // window * window
    bands = [(0, full, window), (full, size, size - full)]
    return [band for band in bands if band[1] > band[0]]


def apply_in_windows(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, window: int) -> torch.Tensor:
    """Apply `fn` (N x C x h x w -> same shape, each item independent) to every window of `x` on its own."""
    batch = x.shape[0]
    out_rows = []
    for top, bottom, tile_h in _bands(x.shape[2], window):
        out_cols = []
        for left, right, tile_w in _bands(x.shape[3], window):
            region = x[:, :, top:bottom, left:right]
            rows, cols = (bottom - top) // tile_h, (right - left) // tile_w
            out_cols.append(_from_tiles(fn(_to_tiles(region, tile_h, tile_w)), batch, rows, cols))
        out_rows.append(out_cols[0] if len(out_cols) == 1 else torch.cat(out_cols, dim=3))
    return out_rows[0] if len(out_rows) == 1 else torch.cat(out_rows, dim=2)


class WindowedAttnProcessor:
    """A diffusers attention processor that runs the stock processor on each window separately.

    Being a processor (not a module), it leaves the attention module's parameters and state-dict keys
    untouched. Note: diffusers' `set_attn_processor`/`set_default_attn_processor` would replace it.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self.inner = AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # windows only make sense for spatial self-attention without a spatially varying norm
        if hidden_states.ndim != 4 or encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("windowed attention supports only unmasked self-attention on B x C x H x W maps")
        if attn.spatial_norm is not None:
            raise ValueError("windowed attention does not support spatial norm")
        return apply_in_windows(lambda tiles: self.inner(attn, tiles), hidden_states, self.window)


def set_window(attention: Attention, window: int | None) -> None:
    """Make `attention` windowed (`window` latent pixels per side) or global (None: the stock processor)."""
    attention.set_processor(AttnProcessor2_0() if window is None else WindowedAttnProcessor(window))
