"""Tiled passes with a halo and linear blending, so that memory stays bounded whatever the image size.

A pass maps a B x C x h x w tensor to B x C' x (h*scale) x (w*scale) (an encoder has scale < 1, a decoder
scale > 1). The input is cut into tiles on a grid; each tile is run with `halo` extra input units around it
(discarded afterwards, so that for a network whose receptive field fits in the halo the tile's output equals
the untiled one exactly), and neighbouring tiles overlap by `2 * blend` output units where their outputs are
mixed with linear weights that sum to one (seams of non-local networks, e.g. GroupNorm statistics, fade out
instead of showing as edges). Tile borders fall on multiples of `multiple` input units so that networks that
downsample see the same alignment as in an untiled run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass
from fractions import Fraction

import torch


@dataclass(frozen=True)
class Span:
    """One tile along one axis, in input units: the core [start, stop), the run window [lo, hi) it is computed
    with, and the part [keep_lo, keep_hi) of its output that is kept (the core widened by the blend zone)."""

    start: int
    stop: int
    lo: int
    hi: int
    keep_lo: int
    keep_hi: int


def _round_down(value: int, multiple: int) -> int:
    return value // multiple * multiple


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def spans(length: int, tile: int, halo: int, blend: int, multiple: int) -> list[Span]:
    """Cut [0, length) into tiles of `tile` input units (a multiple of `multiple`)."""
    tile = max(multiple, _round_down(tile, multiple))
    result = []
    for start in range(0, length, tile):
        stop = min(start + tile, length)
        keep_lo, keep_hi = max(0, start - blend), min(length, stop + blend)
        lo = max(0, _round_down(keep_lo - halo, multiple))
        hi = min(length, _round_up(keep_hi + halo, multiple))
        result.append(Span(start, stop, lo, hi, keep_lo, keep_hi))
    return result


def blend_weights(span: Span, length: int, blend: int) -> torch.Tensor:
    """Weights over [keep_lo, keep_hi): 1 inside, ramps where the neighbour's blend zone overlaps; the ramps of
    two neighbours sum to one at every position."""
    positions = torch.arange(span.keep_lo, span.keep_hi, dtype=torch.float64) + 0.5
    weights = torch.ones_like(positions)
    if blend > 0 and span.start > 0:
        weights = torch.minimum(weights, (positions - (span.start - blend)) / (2 * blend))
    if blend > 0 and span.stop < length:
        weights = torch.minimum(weights, ((span.stop + blend) - positions) / (2 * blend))
    return weights.clamp(0, 1)


def _scaled(value: int, scale: Fraction) -> int:
    scaled = value * scale
    if scaled.denominator != 1:
        raise ValueError(f"tile border {value} does not map onto whole output units at scale {scale}")
    return int(scaled)


def _scale_span(span: Span, scale: Fraction) -> Span:
    return Span(*(_scaled(v, scale) for v in astuple(span)))


def tiles(height: int, width: int, tile: int, halo: int, blend: int, multiple: int) -> Iterator[tuple[Span, Span]]:
    """All (row span, column span) pairs, in raster order."""
    rows = spans(height, tile, halo, blend, multiple)
    columns = spans(width, tile, halo, blend, multiple)
    for row in rows:
        for column in columns:
            yield row, column


def run_tiled(
    run: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    scale: Fraction,
    tile: int,
    halo: int,
    blend: int,
    multiple: int,
) -> torch.Tensor:
    """`run(x)` computed tile by tile (see the module docstring); `tile`, `halo`, `blend`, `multiple` are in
    input units. With one tile this is exactly `run(x)`."""
    height, width = x.shape[-2:]
    if height <= tile and width <= tile:
        return run(x)
    blend = _round_down(min(blend, tile // 2), multiple)
    out_height, out_width, out_blend = _scaled(height, scale), _scaled(width, scale), _scaled(blend, scale)
    out: torch.Tensor | None = None
    for row, column in tiles(height, width, tile, halo, blend, multiple):
        piece = run(x[..., row.lo : row.hi, column.lo : column.hi])
        row, column = _scale_span(row, scale), _scale_span(column, scale)
        if out is None:
            out = piece.new_zeros(*piece.shape[:-2], out_height, out_width)
        piece = piece[
            ..., row.keep_lo - row.lo : row.keep_hi - row.lo, column.keep_lo - column.lo : column.keep_hi - column.lo
        ]
        weight_rows = blend_weights(row, out_height, out_blend)
        weight_columns = blend_weights(column, out_width, out_blend)
        weight = (weight_rows[:, None] * weight_columns[None, :]).to(piece.dtype)
        out[..., row.keep_lo : row.keep_hi, column.keep_lo : column.keep_hi] += piece * weight
    assert out is not None
    return out
