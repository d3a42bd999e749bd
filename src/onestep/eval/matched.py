"""Codecs compared at equal rate: each rate point of a codec against the anchor's curve at the same bpp.

The anchor's metric is interpolated linearly in log(bpp) between its two nearest rate points; a point
outside the bpp range the anchor covers gets no comparison (no extrapolation). This is the
"beats JPEG at the same bpp" check for a model with only one or two rate points, where a BD-rate needs
overlapping curves.
"""

from __future__ import annotations

import math
from typing import Any

from .metrics import MetricInfo
from .results import RatePoint


def interpolate_at(points: list[RatePoint], bpp: float, key: str) -> float | None:
    """The metric `key` of the curve `points` at `bpp`, linear in log bpp; None outside the curve."""
    curve = sorted((p.bpp, p.values.get(key, math.nan)) for p in points if p.bpp > 0)
    curve = [(r, v) for r, v in curve if math.isfinite(v)]
    for (r0, v0), (r1, v1) in zip(curve, curve[1:]):
        if r0 <= bpp <= r1:
            if r1 == r0:
                return v0
            t = (math.log(bpp) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return v0 + t * (v1 - v0)
    return None


def matched_rate_table(
    points: dict[str, list[RatePoint]], anchor: str, infos: list[MetricInfo]
) -> dict[str, list[dict[str, Any]]]:
    """codec -> one row per rate point: its bpp and, per metric, its value, the anchor's at that bpp and
    whether the codec is better."""
    table: dict[str, list[dict[str, Any]]] = {}
    for name, codec_points in points.items():
        if name == anchor:
            continue
        rows = []
        for point in codec_points:
            row: dict[str, Any] = {"setting": point.setting_label, "bpp": point.bpp}
            for info in infos:
                ours = point.values.get(info.key, math.nan)
                theirs = interpolate_at(points[anchor], point.bpp, info.key)
                better = None
                if theirs is not None and math.isfinite(ours):
                    better = ours > theirs if info.higher_is_better else ours < theirs
                row[info.key] = {"value": ours if math.isfinite(ours) else None, anchor: theirs, "better": better}
            rows.append(row)
        table[name] = rows
    return table
