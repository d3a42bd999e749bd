"""Codecs compared at matched rate: each rate point of a codec against the anchor's result at equal or
lower bpp (the anchor's rate point with the highest mean bpp not above the codec's), so the anchor never
gets more bits than the codec it is compared with. A point below the anchor's lowest rate gets no
comparison, with that reason. This is the check for a model with one or two rate points, where a BD-rate
needs overlapping curves.
"""

from __future__ import annotations

import math
from typing import Any

from .metrics import MetricInfo
from .results import RatePoint


def anchor_at_or_below(points: list[RatePoint], bpp: float) -> RatePoint | None:
    """The anchor's rate point with the highest bpp that is <= `bpp`; None if all spend more."""
    candidates = [p for p in points if p.bpp <= bpp]
    return max(candidates, key=lambda p: p.bpp) if candidates else None


def matched_rate_table(
    points: dict[str, list[RatePoint]], anchor: str, infos: list[MetricInfo]
) -> dict[str, list[dict[str, Any]]]:
    """codec -> one row per rate point: its setting and bpp, the anchor's setting and bpp it is compared
    with (or why there is none) and, per metric, both values and whether the codec is better."""
    table: dict[str, list[dict[str, Any]]] = {}
    for name, codec_points in points.items():
        if name == anchor:
            continue
        rows = []
        for point in codec_points:
            match = anchor_at_or_below(points[anchor], point.bpp)
            row: dict[str, Any] = {"setting": point.setting_label, "bpp": point.bpp}
            if match is None:
                lowest = min((p.bpp for p in points[anchor]), default=math.nan)
                row["anchor"] = None
                row["why_not"] = f"the anchor's lowest rate ({lowest:.4f} bpp) is above this point's"
            else:
                row["anchor"] = {"setting": match.setting_label, "bpp": match.bpp}
            for info in infos:
                ours = point.values.get(info.key, math.nan)
                theirs = match.values.get(info.key, math.nan) if match else math.nan
                better = None
                if math.isfinite(ours) and math.isfinite(theirs):
                    better = ours > theirs if info.higher_is_better else ours < theirs
                row[info.key] = {
                    "value": ours if math.isfinite(ours) else None,
                    "anchor": theirs if math.isfinite(theirs) else None,
                    "better": better,
                }
            rows.append(row)
        table[name] = rows
    return table
