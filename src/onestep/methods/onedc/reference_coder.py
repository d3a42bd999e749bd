"""The reference's own entropy coder for y (digest §5.8 and §10), so that onestep reads and writes the y
streams of its `.bin` files byte for byte.

Three things differ from onestep's coder (`entropy/coder.py`) and are reproduced here:
  - the frequency tables: the reference builds them from float32 torch kernels; they equal onestep's exact
    float64 tables except in 17 rows (`TABLE_PATCH`, taken from the reference's table as its own `update()`
    builds it: sha256 `REFERENCE_TABLE_SHA256`, the digest's test vector), so they are portable here;
  - the coder: ryg_rans, byte-wise, 32-bit state, 16-bit frequencies; an out-of-table value codes the last
    symbol, then its length and bits as 2-bit bypass values; one stream behind a flag byte (0x01) and its
    final state, little-endian;
  - the scale index: the reference's float32 `(log(max(s, 1e-5)) - log(0.11)) / step`, truncated.

Pure Python: one loop step per symbol (a 768x512 image has 196,608 y symbols).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ...entropy.coder import flat_numpy
from ...entropy.gaussian import GaussianConditional
from ...entropy.tables import PRECISION, gaussian_tables
from ...errors import StreamError

REFERENCE_TABLE_SHA256 = "681191522681e23feb2d9a5f05c3bd0c17d225e377aa7e681a6f73e6b35fbf3d"
# (row, first, last, delta): the reference's frequency = onestep's + delta for symbol positions first..last
# (the last position of a row is the escape symbol).
TABLE_PATCH = (
    (17, 1, 1, -1), (17, 3, 3, 1), (40, 1, 1, -1), (40, 2, 2, 1), (63, 0, 0, -1), (63, 2, 2, 1),
    (85, 0, 0, -1), (85, 8, 8, 1), (110, 0, 0, 1), (110, 14, 14, 1), (110, 15, 15, -2),
    (165, 22, 22, 1), (165, 30, 30, 1), (165, 53, 53, -2), (167, 25, 25, 1), (167, 29, 29, 1),
    (167, 55, 55, -2), (171, 52, 52, 1), (171, 61, 61, -1), (174, 32, 32, 1), (174, 65, 65, -1),
    (182, 14, 14, 1), (182, 64, 64, 1), (182, 79, 79, -2), (183, 71, 71, 1), (183, 81, 81, -1),
    (199, 90, 90, 1), (199, 101, 101, -1), (205, 0, 82, -1), (205, 84, 100, -1), (205, 101, 101, 100),
    (209, 38, 38, 1), (209, 62, 62, 1), (209, 101, 101, -2), (237, 0, 47, -1), (237, 49, 51, -1),
    (237, 53, 100, -1), (237, 101, 101, 99), (250, 38, 38, 1), (250, 62, 62, 1), (250, 101, 101, -2),
    (254, 40, 40, 1), (254, 60, 60, 1), (254, 101, 101, -2),
)  # fmt: skip

STREAM_FLAG = 0x01  # ((streams - 1) << 4) | 1: one stream, and (unused) 16-bit sub-stream sizes
STATE_LOW = 1 << 23  # ryg_rans' lower bound of the normalized state
BYPASS_BITS = 2
BYPASS_MAX = (1 << BYPASS_BITS) - 1
MAX_BYPASS_CHUNKS = 16  # a raw value has at most 32 bits
SYMBOL_LIMIT = 30000  # the reference clamps symbols to this and sends them as int16
_MASK = (1 << PRECISION) - 1


class ReferenceTables:
    """The reference's cdf table (int32 [256, 103], zero padded), with its per-row sizes and offsets."""

    def __init__(self) -> None:
        ours = gaussian_tables()
        freqs = [f.copy() for f in ours.freqs]
        for row, first, last, delta in TABLE_PATCH:
            freqs[row][first : last + 1] += delta
        self.cdf = np.zeros((len(freqs), max(len(f) for f in freqs) + 1), dtype=np.int32)
        for i, f in enumerate(freqs):
            self.cdf[i, 1 : len(f) + 1] = np.cumsum(f)
        self.sizes = np.array([len(f) + 1 for f in freqs], dtype=np.int64)  # cdf entries: symbols + escape + 1
        self.offsets = -ours.centers.astype(np.int64)
        # Python lists: the coder's loops index them one element at a time
        self.rows = [self.cdf[i, : self.sizes[i]].tolist() for i in range(len(freqs))]

    def sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.cdf).tobytes()).hexdigest()


@functools.lru_cache(maxsize=1)
def reference_tables() -> ReferenceTables:
    tables = ReferenceTables()
    if tables.sha256() != REFERENCE_TABLE_SHA256:  # only if onestep's own tables changed
        raise RuntimeError("the reference's Gaussian table could not be rebuilt (onestep's tables changed?)")
    return tables


class RansEncoder:
    """Chunks of (symbols, table indices) in decode order; `finish()` gives the reference's stream."""

    def __init__(self) -> None:
        self._tables = reference_tables()
        self._starts: list[int] = []
        self._freqs: list[int] = []  # 0: a bypass value of BYPASS_BITS bits held in the start list

    def add(self, symbols: torch.Tensor | np.ndarray, indexes: torch.Tensor | np.ndarray) -> None:
        sym = np.clip(flat_numpy(symbols).astype(np.int64), -SYMBOL_LIMIT, SYMBOL_LIMIT)
        idx = flat_numpy(indexes).astype(np.int64)
        if sym.shape != idx.shape:
            raise ValueError(f"symbols {tuple(symbols.shape)} and indexes {tuple(indexes.shape)} differ in shape")
        t = self._tables
        if idx.size and (idx.min() < 0 or idx.max() >= len(t.rows)):
            raise ValueError(f"table indexes must lie in 0..{len(t.rows) - 1}")
        escape = t.sizes[idx] - 2
        value = sym - t.offsets[idx]
        escaped = (value < 0) | (value >= escape)
        position = np.where(escaped, escape, value)
        starts = t.cdf[idx, position]
        freqs = t.cdf[idx, position + 1] - starts
        raw = np.where(value < 0, -2 * value - 1, 2 * (value - escape))
        if not escaped.any():
            self._starts += starts.tolist()
            self._freqs += freqs.tolist()
            return
        for start, freq, is_escaped, raw_value in zip(starts.tolist(), freqs.tolist(), escaped.tolist(), raw.tolist()):
            self._starts.append(start)
            self._freqs.append(freq)
            if is_escaped:
                self._add_bypass(raw_value)

    def _add_bypass(self, raw: int) -> None:
        chunks = 0
        while raw >> (chunks * BYPASS_BITS):
            chunks += 1
        count = chunks
        while count >= BYPASS_MAX:
            self._starts.append(BYPASS_MAX)
            count -= BYPASS_MAX
        self._starts.append(count)
        self._starts += [(raw >> (j * BYPASS_BITS)) & BYPASS_MAX for j in range(chunks)]
        self._freqs += [0] * (len(self._starts) - len(self._freqs))

    def finish(self) -> bytes:
        x = STATE_LOW
        out = bytearray()  # written backwards: reversed at the end
        bypass_max = 1 << (PRECISION - BYPASS_BITS + 15)
        for start, freq in zip(reversed(self._starts), reversed(self._freqs)):
            if freq:
                x_max = freq << 15
                while x >= x_max:
                    out.append(x & 0xFF)
                    x >>= 8
                x = ((x // freq) << PRECISION) + (x % freq) + start
            else:
                while x >= bypass_max:
                    out.append(x & 0xFF)
                    x >>= 8
                x = (x << BYPASS_BITS) | start
        self._starts, self._freqs = [], []
        out.reverse()
        return bytes([STREAM_FLAG]) + x.to_bytes(4, "little") + bytes(out)


class RansDecoder:
    """Reads the chunks of a reference y stream in order. Corrupt data raises `StreamError`."""

    def __init__(self, data: bytes) -> None:
        data = bytes(data)
        if len(data) < 5:
            raise StreamError(f"the reference y stream has {len(data)} bytes, fewer than its 5-byte framing")
        if data[0] != STREAM_FLAG:
            raise StreamError(f"the reference y stream's flag is 0x{data[0]:02x}; only one-part streams (0x01) exist")
        self._tables = reference_tables()
        self._data = data
        self._x = int.from_bytes(data[1:5], "little")
        self._pos = 5

    def _byte(self) -> int:
        if self._pos >= len(self._data):
            raise StreamError("corrupt reference y stream: it ends too early")
        value = self._data[self._pos]
        self._pos += 1
        return value

    def _bits(self) -> int:
        value = self._x & BYPASS_MAX
        self._x >>= BYPASS_BITS
        if self._x < STATE_LOW:
            self._x = (self._x << 8) | self._byte()
        return value

    def read(self, indexes: torch.Tensor | np.ndarray) -> torch.Tensor:
        """int32 symbols of the next chunk, shaped like `indexes`."""
        shape = tuple(indexes.shape)
        idx = flat_numpy(indexes).astype(np.int64)
        t = self._tables
        if idx.size and (idx.min() < 0 or idx.max() >= len(t.rows)):
            raise ValueError(f"table indexes must lie in 0..{len(t.rows) - 1}")
        rows, offsets, sizes = t.rows, t.offsets.tolist(), t.sizes.tolist()
        out = np.empty(idx.size, dtype=np.int32)
        x, data, pos, end = self._x, self._data, self._pos, len(self._data)
        for i, table in enumerate(idx.tolist()):
            cdf = rows[table]
            cum = x & _MASK
            s = bisect.bisect_right(cdf, cum) - 1
            start = cdf[s]
            x = (cdf[s + 1] - start) * (x >> PRECISION) + cum - start
            while x < STATE_LOW:
                if pos >= end:
                    raise StreamError("corrupt reference y stream: it ends too early")
                x = (x << 8) | data[pos]
                pos += 1
            escape = sizes[table] - 2
            if s == escape:
                self._x, self._pos = x, pos
                s = self._escaped(escape)
                x, pos = self._x, self._pos
            out[i] = s + offsets[table]
        self._x, self._pos = x, pos
        return torch.from_numpy(out).reshape(shape)

    def _escaped(self, escape: int) -> int:
        chunk = self._bits()
        chunks = chunk
        while chunk == BYPASS_MAX:
            chunk = self._bits()
            chunks += chunk
            if chunks > MAX_BYPASS_CHUNKS:
                raise StreamError("corrupt reference y stream: an escaped value is too long")
        raw = 0
        for j in range(chunks):
            raw |= self._bits() << (j * BYPASS_BITS)
        value = -(raw >> 1) - 1 if raw & 1 else (raw >> 1) + escape
        if abs(value) > 2 * SYMBOL_LIMIT + 100:  # beyond what a clamped symbol minus an offset can be
            raise StreamError("corrupt reference y stream: an escaped value is out of range")
        return value

    def finish(self) -> None:
        """Raise `StreamError` unless the stream was consumed exactly (rANS ends in its initial state)."""
        if self._pos != len(self._data) or self._x != STATE_LOW:
            raise StreamError("corrupt reference y stream: it does not end where its symbols do")


class ReferenceGaussian(GaussianConditional):
    """`GaussianConditional` with the reference's coder, tables and scale indices (table parameters fixed to
    the reference's: 0.11..64, 256 scales)."""

    def scale_index(self, scales: torch.Tensor) -> torch.Tensor:
        # The reference's expression, operation for operation (float32; Python floats as its constants).
        s = torch.nan_to_num(scales.detach().float(), nan=0.0)
        s = torch.maximum(s, torch.zeros_like(s) + 1e-5)
        index = (torch.log(s) - self._log_min) / self._log_step
        return index.clamp_(0, self.num_scales - 1).int().long()

    def encoder(self) -> RansEncoder:  # type: ignore[override]
        return RansEncoder()

    def decoder(self, data: bytes) -> RansDecoder:  # type: ignore[override]
        return RansDecoder(data)


class PriorWithCoder:
    """A view of a context prior whose stream methods use another `GaussianConditional`: the prior's code
    and weights, nothing copied, and the prior itself untouched (safe while other threads code with it)."""

    def __init__(self, prior: Any, gaussian: GaussianConditional) -> None:
        self._prior = prior
        self.gaussian = gaussian

    def __getattr__(self, name: str) -> Any:
        return getattr(self._prior, name)

    def method(self, name: str) -> Callable[..., Any]:
        return getattr(type(self._prior), name).__get__(self)


@functools.lru_cache(maxsize=1)
def _reference_gaussian() -> ReferenceGaussian:
    return ReferenceGaussian()


def with_reference_coder(prior: Any) -> PriorWithCoder:
    """`with_reference_coder(codec.prior).method("compress")(y, feature=...)` codes y as the reference does."""
    return PriorWithCoder(prior, _reference_gaussian())
