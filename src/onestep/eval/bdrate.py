"""Bjøntegaard delta rate (VCEG-M33): the average rate difference between two RD curves at equal quality.

log(rate) is fitted as a function of the metric for each curve, either with a piecewise-cubic
Hermite interpolant ("pchip", the monotone Fritsch-Carlson variant that scipy's PchipInterpolator
and the JVET tools use) or with one cubic polynomial ("cubic", the original 2001 formulation).
Both fits are integrated exactly over the metric interval the two curves share; the mean log-rate
difference d gives BD-rate = (exp(d) - 1) * 100 %. Negative means the test codec needs fewer bits.
For metrics where lower is better (LPIPS, FID, ...) pass `higher_is_better=False`: they are negated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Derivatives at the knots: weighted harmonic means inside, the three-point rule at the ends."""
    h = np.diff(x)
    m = np.diff(y) / h
    if len(x) == 2:
        return np.array([m[0], m[0]])
    d = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if m[k - 1] * m[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / m[k - 1] + w2 / m[k])
    for end, (h0, h1, m0, m1) in ((0, (h[0], h[1], m[0], m[1])), (-1, (h[-1], h[-2], m[-1], m[-2]))):
        slope = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(slope) != np.sign(m0):
            slope = 0.0
        elif np.sign(m0) != np.sign(m1) and abs(slope) > abs(3 * m0):
            slope = 3 * m0
        d[end] = slope
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral over [lo, hi] of the Hermite cubic through (x, y) with pchip slopes."""
    d = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        m = (y[k + 1] - y[k]) / h
        c2 = (3 * m - 2 * d[k] - d[k + 1]) / h
        c3 = (d[k] + d[k + 1] - 2 * m) / h**2
        # antiderivative of y_k + d_k s + c2 s^2 + c3 s^3, s = t - x_k
        antiderivative = np.array([c3 / 4, c2 / 3, d[k] / 2, y[k], 0.0])
        total += np.polyval(antiderivative, b - x[k]) - np.polyval(antiderivative, a - x[k])
    return float(total)


def _cubic_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    antiderivative = np.polyint(np.polyfit(x, y, 3))
    return float(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo))


def _curve(rates: Sequence[float], metric: Sequence[float], sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by metric (duplicates merged), with log rates; non-finite points dropped."""
    r = np.asarray(rates, dtype=np.float64)
    q = sign * np.asarray(metric, dtype=np.float64)
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[keep], q[keep]
    order = np.argsort(q, kind="stable")
    q, log_r = q[order], np.log(r[order])
    unique, inverse = np.unique(q, return_inverse=True)
    merged = np.array([log_r[inverse == i].mean() for i in range(len(unique))])
    return unique, merged


@dataclass(frozen=True)
class BDRate:
    """A BD-rate in percent over the metric interval both curves cover, or None and the reason why not."""

    value: float | None
    interval: tuple[float, float] | None = None  # the shared metric range it was computed over
    reason: str | None = None

    @property
    def percent(self) -> float:
        return math.nan if self.value is None else self.value


def _span(values: np.ndarray, sign: float) -> str:
    lo, hi = sorted((sign * values[0], sign * values[-1]))
    return f"{lo:.4g}–{hi:.4g}"


def bd_rate_result(
    anchor_rates: Sequence[float],
    anchor_metric: Sequence[float],
    test_rates: Sequence[float],
    test_metric: Sequence[float],
    higher_is_better: bool = True,
    method: str = "pchip",
) -> BDRate:
    """BD-rate of the test curve against the anchor, or why there is none: too few distinct rate points
    with a finite metric value (2 for pchip, 4 for cubic) or metric ranges that do not overlap."""
    if method not in ("pchip", "cubic"):
        raise ConfigError(f"unknown BD-rate method {method!r} (known: pchip, cubic)")
    sign = 1.0 if higher_is_better else -1.0
    qa, la = _curve(anchor_rates, anchor_metric, sign)
    qt, lt = _curve(test_rates, test_metric, sign)
    needed = 2 if method == "pchip" else 4
    for who, q in (("the codec", qt), ("the anchor", qa)):
        if len(q) < needed:
            points = f"{len(q)} rate point{'' if len(q) == 1 else 's'}"
            return BDRate(None, reason=f"{who} has {points} with a value; a {method} BD-rate needs {needed} per curve")
    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if hi <= lo:
        side = "better" if qt[0] >= qa[-1] else "worse"
        reason = (
            f"no overlap: the codec's values ({_span(qt, sign)}) are all {side} than the anchor's ({_span(qa, sign)})"
        )
        return BDRate(None, reason=reason)
    integral = _pchip_integral if method == "pchip" else _cubic_integral
    mean_difference = (integral(qt, lt, lo, hi) - integral(qa, la, lo, hi)) / (hi - lo)
    interval = (float(min(sign * lo, sign * hi)), float(max(sign * lo, sign * hi)))
    return BDRate((math.exp(mean_difference) - 1) * 100, interval)


def bd_rate(
    anchor_rates: Sequence[float],
    anchor_metric: Sequence[float],
    test_rates: Sequence[float],
    test_metric: Sequence[float],
    higher_is_better: bool = True,
    method: str = "pchip",
) -> float:
    """`bd_rate_result` as a number: NaN where there is none."""
    return bd_rate_result(anchor_rates, anchor_metric, test_rates, test_metric, higher_is_better, method).percent
