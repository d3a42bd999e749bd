"""Real entropy coding of integer symbols, each under one of a fixed list of integer frequency tables
chosen per symbol by an index (CompressAI's "indexed CDFs"): the Gaussian conditional picks a table per
scale, the factorized prior one per channel.

Table i codes the symbols -offsets[i]..escapes[i]-1-offsets[i] at positions 0..escapes[i]-1 and has one
more symbol, the escape, at position escapes[i] for everything outside; an escaped value is then sent
exactly with the Exp-Golomb code of `escape.py` (order shifts[i]).

One constriction ANS stream holds every chunk given to `add()`. Within a chunk, in decode order:
  1. for each table index in increasing order, the symbols with that index (in their C order), each coded
     with the table's fixed `Categorical`, so that each group is a single vectorized call;
  2. the Exp-Golomb lengths of the chunk's escaped symbols, then their payload pieces.
ANS is a stack, so the encoder keeps the chunks and pushes everything in reverse at `finish()`.

Bytes: the coder's 32-bit words in little-endian order, without the trailing zero bytes of the last
word (constriction never ends a stream with a zero word, so the decoder pads them back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import constriction
import numpy as np
import torch

from ..errors import StreamError
from .escape import LENGTH_PROBS, join_escapes, piece_sizes, split_escapes
from .tables import PRECISION

_INT32 = np.iinfo(np.int32)


@dataclass(frozen=True)
class CodingTables:
    """Everything both sides need, built once per set of frequency tables."""

    categoricals: tuple[constriction.stream.model.Categorical, ...]
    offsets: np.ndarray  # (n,) int32: symbol v of table i sits at position v + offsets[i]
    escapes: np.ndarray  # (n,) int32: the escape symbol's position in table i (= its last)
    shifts: np.ndarray  # (n,) int64 Exp-Golomb order of table i's escape code
    lengths: constriction.stream.model.Categorical
    pieces: constriction.stream.model.Uniform

    @classmethod
    def build(cls, freqs: Sequence[np.ndarray], offsets: Sequence[int], shifts: Sequence[int]) -> CodingTables:
        """`freqs[i]`: table i's integer frequencies (escape last), each row summing to 2**PRECISION."""
        if not freqs or len(freqs) > 65536 or not (len(freqs) == len(offsets) == len(shifts)):
            raise ValueError(f"need 1..65536 tables with one offset and shift each, got {len(freqs)}")
        # freq / 2^16 is exact in float64 and constriction's fast quantization of it is exact integer math.
        categoricals = tuple(
            constriction.stream.model.Categorical(np.asarray(f, dtype=np.float64) / (1 << PRECISION), perfect=False)
            for f in freqs
        )
        return cls(
            categoricals=categoricals,
            offsets=np.array(offsets, dtype=np.int32),
            escapes=np.array([len(f) - 1 for f in freqs], dtype=np.int32),
            shifts=np.array(shifts, dtype=np.int64),
            lengths=constriction.stream.model.Categorical(LENGTH_PROBS, perfect=False),
            pieces=constriction.stream.model.Uniform(),
        )


def flat_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.double() if x.dtype == torch.bfloat16 else x).numpy()  # numpy has no bfloat16
    return np.ascontiguousarray(x).reshape(-1)


def _check_indexes(indexes: torch.Tensor | np.ndarray, num_tables: int) -> np.ndarray:
    """Flat table indices in a small unsigned dtype, so that the stable sort is a radix sort."""
    idx = flat_numpy(indexes)
    if idx.dtype.kind not in "iu":
        raise ValueError(f"table indexes must be integers, got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= num_tables):
        raise ValueError(f"table indexes must lie in 0..{num_tables - 1}")
    return idx.astype(np.uint8 if num_tables <= 256 else np.uint16)


def _grouping(idx: np.ndarray, num_tables: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions sorted by table index (stable) and the start of each index's run."""
    order = np.argsort(idx, kind="stable")
    starts = np.zeros(num_tables + 1, dtype=np.int64)
    np.cumsum(np.bincount(idx, minlength=num_tables), out=starts[1:])
    return order, starts


def _escape_raw(value: np.ndarray, offset: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Values outside -offset..high as raw numbers >= 0: below -offset: -offset-1, -offset-2, ... -> 1, 3, ...;
    above high: high+1, high+2, ... -> 0, 2, ..."""
    value, offset, high = value.astype(np.int64), offset.astype(np.int64), high.astype(np.int64)
    return np.where(value < 0, -2 * (value + offset) - 1, 2 * (value - high - 1))


def _escaped_value(raw: np.ndarray, offset: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Inverse of `_escape_raw`, int64."""
    offset, high = offset.astype(np.int64), high.astype(np.int64)
    return np.where(raw & 1, -((raw + 1) >> 1) - offset, (raw >> 1) + high + 1)


class StreamEncoder:
    """Collects chunks in decode order; `finish()` codes them all into one stream."""

    def __init__(self, tables: CodingTables) -> None:
        self._m = tables
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, symbols: torch.Tensor | np.ndarray, indexes: torch.Tensor | np.ndarray) -> None:
        """Integer symbols (any shape, within int32) and same-shape table indices."""
        if tuple(symbols.shape) != tuple(indexes.shape):
            raise ValueError(f"symbols {tuple(symbols.shape)} and indexes {tuple(indexes.shape)} differ in shape")
        sym = flat_numpy(symbols)
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
        offset, escape = m.offsets[idx], m.escapes[idx]
        pos = sym + offset  # position in the table (wraps only where escaped, overwritten below)
        escaped = np.flatnonzero((pos < 0) | (pos >= escape))
        if escaped.size:
            escaped = escaped[np.argsort(idx[escaped], kind="stable")]  # the order of the sorted symbols
            shift = m.shifts[idx[escaped]]
            raw = _escape_raw(sym[escaped], offset[escaped], escape[escaped] - 1 - offset[escaped])
            lengths, pieces = split_escapes(raw, shift)
            if pieces.size:
                coder.encode_reverse(pieces, m.pieces, piece_sizes(lengths, shift))
            coder.encode_reverse(lengths, m.lengths)
            pos[escaped] = escape[escaped]
        order, starts = _grouping(idx, len(m.categoricals))
        pos = pos[order]
        for i in reversed(np.flatnonzero(starts[1:] > starts[:-1])):
            coder.encode_reverse(pos[starts[i] : starts[i + 1]], m.categoricals[i])


class StreamDecoder:
    """Reads chunks in the order they were added. Corrupt data raises `StreamError`, nothing else."""

    def __init__(self, tables: CodingTables, data: bytes) -> None:
        self._m = tables
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
        offset, escape = m.offsets[idx], m.escapes[idx]
        escaped = np.flatnonzero(values == escape)
        values -= offset
        if escaped.size:
            escaped = escaped[np.argsort(idx[escaped], kind="stable")]  # the encoder's order
            shift = m.shifts[idx[escaped]]
            lengths = coder.decode(m.lengths, escaped.size)
            sizes = piece_sizes(lengths, shift)
            pieces = coder.decode(m.pieces, sizes) if sizes.size else np.zeros(0, dtype=np.int32)
            raw = join_escapes(lengths, shift, pieces)
            far = _escaped_value(raw, offset[escaped], escape[escaped] - 1 - offset[escaped])
            if far.min() < _INT32.min or far.max() > _INT32.max:
                raise StreamError("corrupt entropy-coded stream: a symbol does not fit in int32")
            values[escaped] = far
        return values

    def finish(self) -> None:
        """Raise `StreamError` unless the stream was consumed exactly."""
        if not self._coder.is_empty():
            raise StreamError(f"entropy-coded stream has {self._coder.num_valid_bits()} bits left over: corrupt")
