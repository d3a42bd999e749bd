"""Real entropy coding of integer residuals under zero-mean Gaussians from a discrete scale table.

The codec passes symbols round(y - mean) and per-symbol scale indices. One constriction ANS stream holds
every chunk given to `add()`. Within a chunk, in decode order:
  1. for each scale index in increasing order, the symbols with that index (in their C order), each coded
     with one fixed `Categorical` built from that scale's integer table (`tables.py`), so that each group
     is a single vectorized call;
  2. the Exp-Golomb lengths of the chunk's escaped symbols, then their payload pieces (`escape.py`).
ANS is a stack, so the encoder keeps the chunks and pushes everything in reverse at `finish()`.

Bytes: the coder's 32-bit words in little-endian order, without the trailing zero bytes of the last
word (constriction never ends a stream with a zero word, so the decoder pads them back).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import constriction
import numpy as np
import torch
from torch import nn

from ..errors import StreamError
from .escape import LENGTH_PROBS, escape_shift, join_escapes, piece_sizes, split_escapes
from .tables import NUM_SCALES, PRECISION, SCALE_MAX, SCALE_MIN, gaussian_tables, scale_values

_INT32 = np.iinfo(np.int32)


@dataclass(frozen=True)
class _Models:
    """Everything both sides need, built once per scale table."""

    categoricals: tuple[constriction.stream.model.Categorical, ...]
    centers: np.ndarray  # (num_scales,) int32: symbol v of scale i sits at position v + centers[i]
    shifts: np.ndarray  # (num_scales,) int64 Exp-Golomb order of the escape code
    lengths: constriction.stream.model.Categorical
    pieces: constriction.stream.model.Uniform


@functools.lru_cache(maxsize=8)
def _models(scale_min: float, scale_max: float, num_scales: int) -> _Models:
    tables = gaussian_tables(scale_min, scale_max, num_scales)
    # freq / 2^16 is exact in float64 and constriction's fast quantization of it is exact integer math.
    categoricals = tuple(
        constriction.stream.model.Categorical(f.astype(np.float64) / (1 << PRECISION), perfect=False)
        for f in tables.freqs
    )
    return _Models(
        categoricals=categoricals,
        centers=tables.centers.astype(np.int32),
        shifts=np.array([escape_shift(s) for s in tables.scales], dtype=np.int64),
        lengths=constriction.stream.model.Categorical(LENGTH_PROBS, perfect=False),
        pieces=constriction.stream.model.Uniform(),
    )


def _flat_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.double() if x.dtype == torch.bfloat16 else x).numpy()  # numpy has no bfloat16
    return np.ascontiguousarray(x).reshape(-1)


def _check_indexes(indexes: torch.Tensor | np.ndarray, num_scales: int) -> np.ndarray:
    """Flat scale indices in a small unsigned dtype, so that the stable sort is a radix sort."""
    idx = _flat_numpy(indexes)
    if idx.dtype.kind not in "iu":
        raise ValueError(f"scale indexes must be integers, got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= num_scales):
        raise ValueError(f"scale indexes must lie in 0..{num_scales - 1}")
    return idx.astype(np.uint8 if num_scales <= 256 else np.uint16)


def _grouping(idx: np.ndarray, num_scales: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions sorted by scale index (stable) and the start of each index's run."""
    order = np.argsort(idx, kind="stable")
    starts = np.zeros(num_scales + 1, dtype=np.int64)
    np.cumsum(np.bincount(idx, minlength=num_scales), out=starts[1:])
    return order, starts


def _escape_raw(value: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Values outside -c..c as raw numbers >= 0: -c-1, -c-2, ... -> 1, 3, ...; c+1, c+2, ... -> 0, 2, ..."""
    value, center = value.astype(np.int64), center.astype(np.int64)
    return np.where(value < 0, -2 * (value + center) - 1, 2 * (value - center - 1))


def _escaped_value(raw: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Inverse of `_escape_raw`, int64."""
    center = center.astype(np.int64)
    return np.where(raw & 1, -((raw + 1) >> 1) - center, (raw >> 1) + center + 1)


class GaussianConditional(nn.Module):
    """Zero-mean Gaussian on residuals (y - mean) with a discrete scale table. No learnable parameters
    and no state-dict entries."""

    def __init__(self, scale_min: float = SCALE_MIN, scale_max: float = SCALE_MAX, num_scales: int = NUM_SCALES):
        super().__init__()
        if not (0 < scale_min < scale_max) or not (2 <= num_scales <= 65536):
            raise ValueError(f"bad scale table: min {scale_min}, max {scale_max}, {num_scales} scales")
        self.scale_min, self.scale_max, self.num_scales = float(scale_min), float(scale_max), int(num_scales)
        self._log_min = math.log(scale_min)
        self._log_step = (math.log(scale_max) - self._log_min) / (num_scales - 1)
        table = torch.tensor(scale_values(scale_min, scale_max, num_scales), dtype=torch.float32)
        self.register_buffer("scale_table", table, persistent=False)
        # Bin edges exp(ln min + i * step), i = 1..n-1, rounded once from float64: comparing against fixed
        # float32 edges is exact on every device, where a float32 log may differ in its last bit.
        edges = [math.exp(self._log_min + i * self._log_step) for i in range(1, num_scales)]
        self.register_buffer("_edges", torch.tensor(edges, dtype=torch.float32), persistent=False)

    def scale_index(self, scales: torch.Tensor) -> torch.Tensor:
        """int64 table index of each scale: the reference's truncation of (ln(max(s, 1e-5)) - ln(min)) / step
        into 0..n-1, computed as a count of bin edges <= s (no log, so bit-identical across devices).
        NaN goes to 0."""
        s = torch.nan_to_num(scales.detach().float(), nan=0.0)
        edges = self._edges.to(s.device)
        return torch.bucketize(s.contiguous(), edges, right=True).long()

    def _models(self) -> _Models:
        return _models(self.scale_min, self.scale_max, self.num_scales)

    def encoder(self) -> GaussianStreamEncoder:
        return GaussianStreamEncoder(self._models())

    def decoder(self, data: bytes) -> GaussianStreamDecoder:
        return GaussianStreamDecoder(self._models(), data)

    def extra_repr(self) -> str:
        return f"scale_min={self.scale_min}, scale_max={self.scale_max}, num_scales={self.num_scales}"


class GaussianStreamEncoder:
    """Collects chunks in decode order; `finish()` codes them all into one stream."""

    def __init__(self, models: _Models) -> None:
        self._m = models
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, symbols: torch.Tensor | np.ndarray, indexes: torch.Tensor | np.ndarray) -> None:
        """Integer symbols (y - mean, rounded; any shape, within int32) and same-shape scale indices."""
        if tuple(symbols.shape) != tuple(indexes.shape):
            raise ValueError(f"symbols {tuple(symbols.shape)} and indexes {tuple(indexes.shape)} differ in shape")
        sym = _flat_numpy(symbols)
        if sym.dtype.kind == "f":
            if not np.all(np.isfinite(sym)) or not np.array_equal(sym, np.round(sym)):
                raise ValueError("symbols must be whole numbers")
        elif sym.dtype.kind not in "iu":
            raise ValueError(f"symbols must be integers, got {sym.dtype}")
        if sym.size and (sym.min() < _INT32.min or sym.max() > _INT32.max):
            raise ValueError("symbols must fit in int32")
        idx = _check_indexes(indexes, len(self._m.categoricals))
        if sym.size:
            self._chunks.append((sym.astype(np.int32), idx))

    def finish(self) -> bytes:
        coder = constriction.stream.stack.AnsCoder()
        for sym, idx in reversed(self._chunks):
            self._push_chunk(coder, sym, idx)
        self._chunks = []
        words = coder.get_compressed().astype("<u4", copy=False)
        return words.tobytes().rstrip(b"\0")

    def _push_chunk(self, coder: constriction.stream.stack.AnsCoder, sym: np.ndarray, idx: np.ndarray) -> None:
        m = self._m
        # int32 passes in the caller's order, then one gather: memory traffic is what costs time here.
        center = m.centers[idx]
        escaped = np.flatnonzero((sym < -center) | (sym > center))
        pos = sym + center  # position in the scale's alphabet (wraps only where escaped, overwritten below)
        if escaped.size:
            escaped = escaped[np.argsort(idx[escaped], kind="stable")]  # the order of the sorted symbols
            shift = m.shifts[idx[escaped]]
            lengths, pieces = split_escapes(_escape_raw(sym[escaped], center[escaped]), shift)
            if pieces.size:
                coder.encode_reverse(pieces, m.pieces, piece_sizes(lengths, shift))
            coder.encode_reverse(lengths, m.lengths)
            pos[escaped] = 2 * center[escaped] + 1
        order, starts = _grouping(idx, len(m.categoricals))
        pos = pos[order]
        for i in reversed(np.flatnonzero(starts[1:] > starts[:-1])):
            coder.encode_reverse(pos[starts[i] : starts[i + 1]], m.categoricals[i])


class GaussianStreamDecoder:
    """Reads chunks in the order they were added. Corrupt data raises `StreamError`, nothing else."""

    def __init__(self, models: _Models, data: bytes) -> None:
        self._m = models
        data = bytes(data)
        data += b"\0" * (-len(data) % 4)
        try:
            self._coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        except Exception as e:  # constriction rejects a stream that ends in a zero word
            raise StreamError(f"invalid entropy-coded stream: {e}") from None

    def read(self, indexes: torch.Tensor | np.ndarray) -> torch.Tensor:
        """int32 symbols of the next chunk, shaped like `indexes`."""
        shape = tuple(indexes.shape)
        idx = _check_indexes(indexes, len(self._m.categoricals))
        try:
            values = self._read(idx)
        except StreamError:
            raise
        except Exception as e:
            raise StreamError(f"corrupt entropy-coded stream: {e}") from None
        return torch.from_numpy(values).reshape(shape)

    def _read(self, idx: np.ndarray) -> np.ndarray:
        m, coder = self._m, self._coder
        order, starts = _grouping(idx, len(m.categoricals))
        grouped = np.empty(idx.size, dtype=np.int32)
        for i in np.flatnonzero(starts[1:] > starts[:-1]):
            grouped[starts[i] : starts[i + 1]] = coder.decode(m.categoricals[i], int(starts[i + 1] - starts[i]))
        values = np.empty(idx.size, dtype=np.int32)
        values[order] = grouped
        center = m.centers[idx]
        escaped = np.flatnonzero(values == 2 * center + 1)
        values -= center
        if escaped.size:
            escaped = escaped[np.argsort(idx[escaped], kind="stable")]  # the encoder's order
            shift = m.shifts[idx[escaped]]
            lengths = coder.decode(m.lengths, escaped.size)
            sizes = piece_sizes(lengths, shift)
            pieces = coder.decode(m.pieces, sizes) if sizes.size else np.zeros(0, dtype=np.int32)
            far = _escaped_value(join_escapes(lengths, shift, pieces), center[escaped])
            if far.min() < _INT32.min or far.max() > _INT32.max:
                raise StreamError("corrupt entropy-coded stream: a symbol does not fit in int32")
            values[escaped] = far
        return values

    def finish(self) -> None:
        """Raise `StreamError` unless the stream was consumed exactly."""
        if not self._coder.is_empty():
            raise StreamError(f"entropy-coded stream has {self._coder.num_valid_bits()} bits left over: corrupt")
