"""Matched-rate comparison: each rate point against the anchor's result at equal or lower bpp."""

from __future__ import annotations

from onestep.eval.matched import anchor_at_or_below, matched_rate_table
from onestep.eval.metrics import MetricInfo
from onestep.eval.results import RatePoint


def point(bpp: float, **values: float) -> RatePoint:
    return RatePoint(setting=bpp, setting_label=str(bpp), bpp=bpp, values=values, encode_s=0, decode_s=0, num_images=1)


def test_the_anchor_never_gets_more_bits() -> None:
    curve = [point(0.1, psnr=20.0), point(0.4, psnr=30.0), point(0.2, psnr=25.0)]
    assert anchor_at_or_below(curve, 0.39).bpp == 0.2  # not the closer 0.4: that spends more
    assert anchor_at_or_below(curve, 0.4).bpp == 0.4  # equal counts
    assert anchor_at_or_below(curve, 5.0).bpp == 0.4
    assert anchor_at_or_below(curve, 0.09) is None


def test_matched_table_respects_metric_direction_and_says_why_not() -> None:
    infos = [MetricInfo("psnr", "PSNR", True), MetricInfo("dist", "distance", False)]
    points = {
        "avif": [point(0.1, psnr=20.0, dist=1.0), point(0.4, psnr=30.0, dist=0.2)],
        "ours": [point(0.2, psnr=19.0, dist=0.7), point(0.05, psnr=40.0, dist=0.0), point(0.5, psnr=31.0)],
    }
    rows = matched_rate_table(points, "avif", infos)["ours"]
    assert rows[0]["anchor"] == {"setting": "0.1", "bpp": 0.1}
    assert rows[0]["psnr"] == {"value": 19.0, "anchor": 20.0, "better": False}
    assert rows[0]["dist"] == {"value": 0.7, "anchor": 1.0, "better": True}
    assert (
        rows[1]["anchor"] is None
        and rows[1]["why_not"] == "the anchor's lowest rate (0.1000 bpp) is above this point's"
    )
    assert rows[1]["psnr"] == {"value": 40.0, "anchor": None, "better": None}
    assert rows[2]["psnr"]["better"] is True and rows[2]["dist"] == {"value": None, "anchor": 0.2, "better": None}
    assert "avif" not in matched_rate_table(points, "avif", infos)
