"""Fixed-length packing of indices, the reference codec's layout (digest section 4): each index as a `bits`-bit field,
most significant bit first, fields concatenated, and the whole bit string read as one big-endian integer
in exactly ceil(count * bits / 8) bytes, so the zero padding sits at the FRONT of the first byte."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import StreamError


def packed_size(count: int, bits: int) -> int:
    return -(-count * bits // 8)


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= 62:
        raise ValueError(f"bits per index must be in 1..62, got {bits}")


def pack_indices(indices: torch.Tensor | np.ndarray, bits: int) -> bytes:
    """Indices (any shape, flattened in C order), each in 0..2**bits - 1."""
    _check_bits(bits)
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    values = np.ascontiguousarray(indices).reshape(-1)
    if values.dtype.kind not in "iu":
        raise ValueError(f"indices must be integers, got {values.dtype}")
    values = values.astype(np.int64)
    if values.size and (values.min() < 0 or values.max() >= 1 << bits):
        raise ValueError(f"indices must lie in 0..{(1 << bits) - 1} to fit in {bits} bits")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    field_bits = ((values[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)
    pad = np.zeros(-len(field_bits) % 8, dtype=np.uint8)
    return np.packbits(np.concatenate([pad, field_bits])).tobytes()


def unpack_indices(data: bytes, count: int, bits: int, num_codes: int | None = None) -> np.ndarray:
    """int64 array of `count` indices. Raises StreamError if `data` has the wrong length, its padding
    bits are not zero, or an index is >= `num_codes` (when given)."""
    _check_bits(bits)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    expected = packed_size(count, bits)
    if len(data) != expected:
        raise StreamError(f"index field has {len(data)} bytes, expected {expected} for {count} indices of {bits} bits")
    all_bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
    pad = len(all_bits) - count * bits
    if all_bits[:pad].any():
        raise StreamError("index field is corrupt: its padding bits are not zero")
    weights = np.int64(1) << np.arange(bits - 1, -1, -1, dtype=np.int64)
    values = all_bits[pad:].reshape(count, bits).astype(np.int64) @ weights
    if num_codes is not None and values.size and values.max() >= num_codes:
        raise StreamError(f"index field is corrupt: index {int(values.max())} is >= the codebook size {num_codes}")
    return values
