"""From per-image measurements to rate points, results files and the BD-rate table.

Per codec: `<name>.json` in CompressAI's format ({"name", "description", "results": {"bpp": [...],
"psnr-rgb": [...], ...}}, one entry per setting, means over images) and `<name>.csv` (one row per
image and setting, then one "mean" row per setting). Distribution metrics exist only per setting.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .bdrate import BDRate, bd_rate_result
from .metrics import METRICS_BY_KEY, MetricSuite
from .runner import Codec, EvalRun, Measurement


@dataclass
class RatePoint:
    setting: Any
    setting_label: str
    bpp: float
    values: dict[str, float]  # metric key -> mean over images (or the set value for distribution metrics)
    encode_s: float
    decode_s: float
    num_images: int


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def summarize(run: EvalRun, codec: Codec, suite: MetricSuite) -> list[RatePoint]:
    points = []
    for setting in codec.settings:
        rows = [m for m in run.measurements if m.codec == codec.name and m.setting == setting]
        values = {m.info.key: _mean([r.metrics[m.info.key] for r in rows]) for m in suite.image_metrics}
        for metric in suite.distribution_metrics:
            # images smaller than a patch contribute no features
            real = [run.reference_features[r.image][metric.extractor] for r in rows]
            fake = [run.features[(codec.name, setting, r.image)][metric.extractor] for r in rows]
            real, fake = [t for t in real if t.numel()], [t for t in fake if t.numel()]
            if sum(len(t) for t in real) >= 2 and sum(len(t) for t in fake) >= 2:
                values.update(metric.compute(torch.cat(real), torch.cat(fake)))
            else:
                values[metric.info.key] = math.nan
        points.append(
            RatePoint(
                setting,
                codec.setting_label(setting),
                _mean([r.bpp for r in rows]),
                values,
                _mean([r.encode_s for r in rows]),
                _mean([r.decode_s for r in rows]),
                len(rows),
            )
        )
    return points


def compressai_json(
    codec: Codec, points: list[RatePoint], image_note: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Non-finite values (a metric that could not be computed) become null, so the file is strict JSON;
    `extra` (e.g. which metrics the codec was trained on) is added at the top level."""
    results: dict[str, list[Any]] = {codec.setting_name: [p.setting for p in points]}
    results["bpp"] = [_finite(p.bpp) for p in points]
    for key in points[0].values if points else []:
        results[key] = [_finite(p.values[key]) for p in points]
    results["encoding_time"] = [_finite(p.encode_s) for p in points]
    results["decoding_time"] = [_finite(p.decode_s) for p in points]
    document = {"name": codec.label, "description": f"{codec.description}; {image_note}", "results": results}
    return {**document, **(extra or {})}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _number(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6g}"


def write_codec_files(
    folder: Path,
    codec: Codec,
    points: list[RatePoint],
    measurements: list[Measurement],
    image_note: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """`<name>.json` (CompressAI style) and `<name>.csv` (per image, then per-setting means)."""
    folder.mkdir(parents=True, exist_ok=True)
    document = compressai_json(codec, points, image_note, extra)
    (folder / f"{codec.name}.json").write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    keys = sorted({k for p in points for k in p.values}, key=_metric_order)
    with (folder / f"{codec.name}.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["setting", "image", "bpp", "bytes", "encode_s", "decode_s", *keys])
        for point in points:
            rows = [m for m in measurements if m.codec == codec.name and m.setting == point.setting]
            for m in rows:
                metric_cells = [_number(m.metrics[k]) if k in m.metrics else "" for k in keys]
                writer.writerow(
                    [
                        point.setting_label,
                        m.image,
                        _number(m.bpp),
                        m.num_bytes,
                        _number(m.encode_s),
                        _number(m.decode_s),
                        *metric_cells,
                    ]
                )
            writer.writerow(
                [
                    point.setting_label,
                    "mean",
                    _number(point.bpp),
                    "",
                    _number(point.encode_s),
                    _number(point.decode_s),
                    *[_number(point.values[k]) for k in keys],
                ]
            )


def _metric_order(key: str) -> int:
    order = list(METRICS_BY_KEY) + ["kid-std"]
    return order.index(key) if key in order else len(order)


def bd_rate_table(
    points: dict[str, list[RatePoint]], anchor: str, metric_keys: list[str], method: str = "pchip"
) -> dict[str, dict[str, BDRate]]:
    """metric key -> codec -> BD-rate against the anchor codec (or why there is none)."""
    table: dict[str, dict[str, BDRate]] = {}
    base = points[anchor]
    for key in metric_keys:
        info = METRICS_BY_KEY[key]
        row = {}
        for name, curve in points.items():
            if name == anchor:
                continue
            row[name] = bd_rate_result(
                [p.bpp for p in base],
                [p.values[key] for p in base],
                [p.bpp for p in curve],
                [p.values[key] for p in curve],
                higher_is_better=info.higher_is_better,
                method=method,
            )
        table[key] = row
    return table


def write_bd_rate(
    folder: Path, table: dict[str, dict[str, BDRate]], anchor: str, method: str, trained_on: dict[str, list[str]]
) -> None:
    """bd-rate.json: per metric and codec the value (null where there is none), the metric interval it was
    computed over and, for nulls, the reason; `trained_on`: codec -> metric keys whose network one of its
    training losses used. bd-rate.csv: the values, "n/a" where there is none."""
    document = {
        "anchor": anchor,
        "method": method,
        "unit": "percent; negative = fewer bits than the anchor at equal quality",
        "bd_rate": {key: {c: r.value for c, r in row.items()} for key, row in table.items()},
        "overlap": {key: {c: r.interval for c, r in row.items() if r.interval} for key, row in table.items()},
        "why_not": {key: {c: r.reason for c, r in row.items() if r.reason} for key, row in table.items()},
        "trained_on_metric_features": trained_on,
    }
    (folder / "bd-rate.json").write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    codecs = sorted({c for row in table.values() for c in row})
    with (folder / "bd-rate.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["metric", *codecs])
        for key, row in table.items():
            writer.writerow([key, *["n/a" if row[c].value is None else f"{row[c].value:.6g}" for c in codecs]])
