"""Equal-rate comparison against an anchor curve."""

from __future__ import annotations

import math

from onestep.eval.matched import interpolate_at, matched_rate_table
from onestep.eval.metrics import MetricInfo
from onestep.eval.results import RatePoint


def point(bpp: float, **values: float) -> RatePoint:
    return RatePoint(setting=bpp, setting_label=str(bpp), bpp=bpp, values=values, encode_s=0, decode_s=0, num_images=1)


def test_interpolation_is_linear_in_log_rate_and_never_extrapolates() -> None:
    curve = [point(0.1, psnr=20.0), point(0.4, psnr=30.0)]
    assert math.isclose(interpolate_at(curve, 0.2, "psnr"), 25.0)  # log 0.2 is halfway between log 0.1 and log 0.4
    assert interpolate_at(curve, 0.1, "psnr") == 20.0
    assert interpolate_at(curve, 0.05, "psnr") is None and interpolate_at(curve, 0.5, "psnr") is None


def test_matched_table_respects_metric_direction() -> None:
    infos = [MetricInfo("psnr", "PSNR", True), MetricInfo("dist", "distance", False)]
    points = {
        "jpeg": [point(0.1, psnr=20.0, dist=1.0), point(0.4, psnr=30.0, dist=0.2)],
        "ours": [point(0.2, psnr=26.0, dist=0.7), point(1.0, psnr=40.0, dist=0.0)],
    }
    rows = matched_rate_table(points, "jpeg", infos)["ours"]
    assert rows[0]["psnr"] == {"value": 26.0, "jpeg": 25.0, "better": True}
    assert math.isclose(rows[0]["dist"]["jpeg"], 0.6) and rows[0]["dist"]["better"] is False
    assert rows[1]["psnr"]["jpeg"] is None and rows[1]["psnr"]["better"] is None
