"""Exact code for values outside a scale's table support (after the escape symbol).

An escaped value becomes a non-negative `raw` number (see `coder.StreamEncoder`), written as an
Exp-Golomb code of order k, where k = floor(log2(scale)) so that the code's length follows the scale:
m = (raw >> k) + 1 has n + 1 bits; we send n (`LENGTH_PROBS`, geometric) and then the n bits below
m's leading one together with raw's k low bits as one (n + k)-bit payload, in uniform pieces of up to
16 bits. All functions work on whole arrays so that every escape of a chunk costs two coder calls.
"""

from __future__ import annotations

import numpy as np

MAX_LENGTH = 32  # raw < 2**32 (symbols fit in int32), so n <= 32
MAX_SHIFT = 24
PIECE_BITS = 16

# P(n) = 2^-(n+1), the last one taking the remainder: Elias-gamma's cost for the length.
LENGTH_PROBS = np.array([2.0 ** -(n + 1) for n in range(MAX_LENGTH)] + [2.0**-MAX_LENGTH], dtype=np.float64)


def escape_shift(scale: float) -> int:
    """floor(log2(scale)) clipped to 0..MAX_SHIFT, exactly (frexp is exact)."""
    return int(np.clip(np.frexp(scale)[1] - 1, 0, MAX_SHIFT))


def piece_layout(width: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split payloads of `width` bits into pieces of <= PIECE_BITS bits, least significant first.
    Returns for each piece its payload's position, its bit offset and its width."""
    counts = -(-width // PIECE_BITS)
    owner = np.repeat(np.arange(len(width)), counts)
    first = np.cumsum(counts) - counts
    offset = (np.arange(len(owner)) - first[owner]) * PIECE_BITS
    return owner, offset, np.minimum(PIECE_BITS, width[owner] - offset)


def split_escapes(raw: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int64 `raw` (0 <= raw < 2**32) and shifts -> (lengths n, payload pieces), int32, ready for the
    coder; `piece_sizes` gives the pieces' alphabet sizes."""
    m = (raw >> shift) + 1
    n = np.frexp(m.astype(np.float64))[1].astype(np.int64) - 1  # exact: m < 2**53
    payload = ((m - (np.int64(1) << n)) << shift) | (raw & ((np.int64(1) << shift) - 1))
    owner, offset, width = piece_layout(n + shift)
    pieces = (payload[owner] >> offset) & ((np.int64(1) << width) - 1)
    return n.astype(np.int32), pieces.astype(np.int32)


def piece_sizes(lengths: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The alphabet size of every payload piece, as the decoder learns it from the lengths."""
    _, _, width = piece_layout(lengths.astype(np.int64) + shift)
    return (np.int64(1) << width).astype(np.int32)


def join_escapes(lengths: np.ndarray, shift: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """Inverse of `split_escapes`: int64 raw values."""
    n = lengths.astype(np.int64)
    owner, offset, _ = piece_layout(n + shift)
    payload = np.zeros(len(n), dtype=np.int64)
    np.add.at(payload, owner, pieces.astype(np.int64) << offset)  # pieces do not overlap: add is or
    m = (np.int64(1) << n) + (payload >> shift)
    return ((m - 1) << shift) | (payload & ((np.int64(1) << shift) - 1))
