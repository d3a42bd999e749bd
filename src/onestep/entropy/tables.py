"""The discrete scale table and the integer frequency tables of the Gaussian conditional coder.

For each of the `num_scales` log-spaced scales s we take the zero-mean Gaussian's mass on the integer bins
-c..c (c = the smallest i in 2..50 with Phi(i/s) > 0.9999, as the reference codec does) plus one tail/escape
symbol holding the mass outside, and quantize it to 16-bit integer frequencies, every symbol at least 1.

Everything here is exact and platform-independent: float64 `math.erfc`, round-half-away, then integer
arithmetic only. The tables are built once per process per (min, max, count) and cached.

The reference builds the same tables from float32 torch (`torch.linspace` + `torch.erf` kernels, whose
results depend on the CPU's vector width), so its table is not portable. Ours has the same supports
and differs from it in 17 of the 256 rows, by at most one count per symbol (the escape symbol, which
collects the rounding remainder, by up to 100). Fed the reference's float32 pmfs, `quantize_pmf`
reproduces its table exactly (tests/test_entropy_tables.py).
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np

SCALE_MIN = 0.11
SCALE_MAX = 64.0
NUM_SCALES = 256
PRECISION = 16  # frequencies sum to 2**PRECISION
MAX_CENTER = 50  # widest support is -50..50; beyond that is the escape symbol
MIN_CENTER = 2
CENTER_MASS = 0.9999  # the support ends where Phi(c / s) exceeds this


def scale_values(
    scale_min: float = SCALE_MIN, scale_max: float = SCALE_MAX, num_scales: int = NUM_SCALES
) -> list[float]:
    """exp(linspace(ln min, ln max, n)) in float64."""
    lo, hi = math.log(scale_min), math.log(scale_max)
    step = (hi - lo) / (num_scales - 1)
    return [math.exp(lo + i * step) for i in range(num_scales)]


def _gaussian_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _round_half_away(x: float) -> int:
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_pmf(pmf: list[float], precision: int = PRECISION) -> list[int]:
    """Integer frequencies summing to 2**precision, each at least 1, close to `pmf` (CompressAI's scheme:
    round, rescale to the total, give the remainder to the last symbol, then let every zero-width symbol
    take one count from the smallest frequency above 1)."""
    total = 1 << precision
    if len(pmf) > total:
        raise ValueError(f"{len(pmf)} symbols cannot all get a frequency at {precision}-bit precision")
    rounded = [_round_half_away(p * total) for p in pmf]
    norm = sum(rounded)
    if norm <= 0:
        raise ValueError("the pmf has no mass")
    cdf = [0]
    for f in rounded:
        cdf.append(cdf[-1] + total * f // norm)
    cdf[-1] = total
    for i in range(len(cdf) - 1):
        if cdf[i] != cdf[i + 1]:
            continue
        widths = [(cdf[j + 1] - cdf[j], j) for j in range(len(cdf) - 1) if cdf[j + 1] - cdf[j] > 1]
        _, donor = min(widths)  # the first symbol with the smallest frequency above 1
        if donor < i:
            for j in range(donor + 1, i + 1):
                cdf[j] -= 1
        else:
            for j in range(i + 1, donor + 1):
                cdf[j] += 1
    return [cdf[j + 1] - cdf[j] for j in range(len(cdf) - 1)]


def _support_center(scale: float) -> int:
    for c in range(MIN_CENTER, MAX_CENTER + 1):
        if _gaussian_cdf(c / scale) > CENTER_MASS:
            return c
    return MAX_CENTER


def _scale_pmf(scale: float, center: int) -> list[float]:
    """Mass of the bins -center..center, then the two-sided tail beyond them. Computed from the upper
    tail (erfc) so that no mass is lost to cancellation near 1."""
    k = 1.0 / (scale * math.sqrt(2.0))

    def upper_tail(x: float) -> float:  # P(X > x) for x >= 0
        return 0.5 * math.erfc(x * k)

    pmf = []
    for v in range(-center, center + 1):
        a = abs(v)
        pmf.append(1.0 - 2.0 * upper_tail(0.5) if a == 0 else upper_tail(a - 0.5) - upper_tail(a + 0.5))
    pmf.append(2.0 * upper_tail(center + 0.5))
    return pmf


@dataclass(frozen=True)
class GaussianTables:
    """`freqs[i]`: int64 frequencies of symbols -centers[i]..centers[i], then the escape symbol; each row
    sums to 2**PRECISION."""

    scales: tuple[float, ...]
    centers: np.ndarray  # (num_scales,) int64
    freqs: tuple[np.ndarray, ...]

    def cdf_array(self) -> np.ndarray:
        """The reference's layout: int32 [num_scales, max_len + 2], each row the cumulative frequencies
        (0 first, 2**PRECISION last), zero padded."""
        width = max(len(f) for f in self.freqs) + 1
        out = np.zeros((len(self.freqs), width), dtype=np.int32)
        for i, f in enumerate(self.freqs):
            out[i, 1 : len(f) + 1] = np.cumsum(f)
        return out

    def sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.cdf_array()).tobytes()).hexdigest()


@functools.lru_cache(maxsize=8)
def gaussian_tables(
    scale_min: float = SCALE_MIN, scale_max: float = SCALE_MAX, num_scales: int = NUM_SCALES
) -> GaussianTables:
    if not (0 < scale_min < scale_max) or num_scales < 2:
        raise ValueError(f"bad scale table: min {scale_min}, max {scale_max}, {num_scales} scales")
    scales = scale_values(scale_min, scale_max, num_scales)
    centers = [_support_center(s) for s in scales]
    freqs = tuple(np.array(quantize_pmf(_scale_pmf(s, c)), dtype=np.int64) for s, c in zip(scales, centers))
    for f in freqs:
        f.setflags(write=False)
    return GaussianTables(tuple(scales), np.array(centers, dtype=np.int64), freqs)
