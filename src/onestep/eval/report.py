"""A self-contained HTML report: setup, BD-rate table, RD plots and side-by-side crops, so a person
can look rather than read. Images are embedded as base64 PNGs; the file needs nothing else."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..images import encode_png
from .metrics import METRICS_BY_KEY, MetricSuite
from .results import RatePoint

CROP = 256


@dataclass
class Crop:
    title: str  # "JPEG quality=5"
    caption: str  # "0.153 bpp, 24.1 dB"
    pixels: torch.Tensor  # 3 x CROP x CROP uint8


@dataclass
class CropRow:
    image: str
    target_bpp: float
    crops: list[Crop]  # the original first


def detailed_window(image: torch.Tensor, size: int = CROP) -> tuple[int, int]:
    """Top-left corner of the size x size window with the most gradient energy (where artefacts show)."""
    gray = image.to(torch.float32).mean(0, keepdim=True)
    energy = (gray[:, 1:, :-1] - gray[:, :-1, :-1]).abs() + (gray[:, :-1, 1:] - gray[:, :-1, :-1]).abs()
    if energy.shape[1] < size or energy.shape[2] < size:
        return 0, 0
    stride = size // 4
    scores = F.avg_pool2d(energy.unsqueeze(0), size, stride=stride)[0, 0]
    row, col = divmod(int(scores.argmax()), scores.shape[1])
    return row * stride, col * stride


def crop(image: torch.Tensor, top: int, left: int, size: int = CROP) -> torch.Tensor:
    return image[:, top : top + size, left : left + size].contiguous()


def _png_tag(pixels: torch.Tensor, alt: str) -> str:
    data = base64.b64encode(encode_png(pixels)).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _format(value: float, key: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if key in ("psnr-rgb", "fd-enl0", "fid") else f"{value:.4f}"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.name, th.name { text-align: left; }
td.good { background: #e3f4e3; } td.bad { background: #f8e3e3; }
.plots img { width: 640px; margin: 0.3em; border: 1px solid #ddd; }
.crops { display: flex; flex-wrap: wrap; gap: 0.6em; margin-bottom: 1.5em; }
.crops figure { margin: 0; text-align: center; font-size: 0.8em; }
.crops img { width: 320px; height: 320px; image-rendering: pixelated; border: 1px solid #999; }
.note { color: #555; font-size: 0.9em; }
"""


def _setup_section(setup: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th class='name'>{html.escape(k)}</th><td class='name'>{html.escape(str(v))}</td></tr>"
        for k, v in setup.items()
    )
    return f"<table>{rows}</table>"


def _codecs_section(codecs: list[dict[str, str]], points: dict[str, list[RatePoint]]) -> str:
    parts = ["<h2>Codecs</h2><table><tr><th class='name'>codec</th><th class='name'>setup</th>"]
    parts.append("<th>settings</th><th>mean bpp reached</th></tr>")
    for c in codecs:
        bpps = [p.bpp for p in points[c["name"]]]
        parts.append(
            f"<tr><td class='name'>{html.escape(c['label'])}</td><td class='name'>{html.escape(c['description'])}"
            f"</td><td>{len(bpps)}</td><td>{min(bpps):.3f} – {max(bpps):.3f}</td></tr>"
        )
    return "".join(parts) + "</table>"


METRICS_NOTE = (
    "ENL0-dist and FD-ENL0 are offline stand-ins computed on ImageNet EfficientNet-Lite0 features; they are "
    "<b>not</b> LPIPS or FID and their values are not comparable with published LPIPS/FID numbers. "
    "FID, KID and FD-ENL0 use the FID/256 patch protocol (256-px patches plus one pass shifted by 128 px)."
)


def _metrics_section(suite: MetricSuite) -> str:
    parts = [f"<h2>Metrics</h2><p class='note'>{METRICS_NOTE}</p><ul>"]
    for info in suite.infos:
        parts.append(f"<li>{html.escape(info.label)} ({'higher' if info.higher_is_better else 'lower'} is better)</li>")
    for key, reason in suite.skipped.items():
        parts.append(f"<li><b>skipped {html.escape(METRICS_BY_KEY[key].label)}</b>: {html.escape(reason)}</li>")
    return "".join(parts) + "</ul>"


BD_NOTE = (
    "Average bit-rate difference at equal quality over the quality interval both curves cover (piecewise-cubic "
    "fit of log-rate); negative = fewer bits than the anchor. n/a: the curves do not overlap."
)


def _bd_section(bd_table: dict[str, dict[str, float]], anchor: str, labels: dict[str, str]) -> str:
    parts = [f"<h2>BD-rate against {html.escape(labels.get(anchor, anchor))}</h2><p class='note'>{BD_NOTE}</p>"]
    parts.append("<table><tr><th class='name'>codec</th>")
    parts += [f"<th>{html.escape(METRICS_BY_KEY[k].label.split(' (')[0])}</th>" for k in bd_table]
    parts.append("</tr>")
    for name in [n for n in labels if n != anchor]:
        cells = []
        for key in bd_table:
            value = bd_table[key].get(name, math.nan)
            if math.isfinite(value):
                cells.append(f"<td class='{'good' if value < 0 else 'bad'}'>{value:+.1f} %</td>")
            else:
                cells.append("<td>n/a</td>")
        parts.append(f"<tr><td class='name'>{html.escape(labels[name])}</td>{''.join(cells)}</tr>")
    return "".join(parts) + "</table>"


def _plots_section(plots: list[Path]) -> str:
    parts = ["<h2>Rate-distortion-perception curves</h2><div class='plots'>"]
    for path in plots:
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">')
    return "".join(parts) + "</div>"


CROPS_NOTE = (
    "256 × 256 crops (shown enlarged) from each image's most detailed region; per codec, the setting whose "
    "bpp on this image is closest to the target."
)


def _crops_section(crop_rows: list[CropRow]) -> str:
    parts = [f"<h2>Crops at similar bit rates</h2><p class='note'>{CROPS_NOTE}</p>"]
    for row in crop_rows:
        parts.append(f"<h3>{html.escape(row.image)}, about {row.target_bpp:g} bpp</h3><div class='crops'>")
        for c in row.crops:
            caption = f"<b>{html.escape(c.title)}</b><br>{html.escape(c.caption)}"
            parts.append(f"<figure>{_png_tag(c.pixels, c.title)}<figcaption>{caption}</figcaption></figure>")
        parts.append("</div>")
    return "".join(parts)


def _means_section(codecs: list[dict[str, str]], points: dict[str, list[RatePoint]]) -> str:
    parts = ["<h2>Mean values per setting</h2>"]
    for c in codecs:
        keys = list(points[c["name"]][0].values) if points[c["name"]] else []
        parts.append(f"<h3>{html.escape(c['label'])}</h3><table><tr><th class='name'>setting</th><th>bpp</th>")
        parts += [f"<th>{html.escape(k)}</th>" for k in keys] + ["<th>enc s</th><th>dec s</th></tr>"]
        for p in points[c["name"]]:
            cells = "".join(f"<td>{_format(p.values[k], k)}</td>" for k in keys)
            parts.append(
                f"<tr><td class='name'>{html.escape(p.setting_label)}</td><td>{p.bpp:.4f}</td>{cells}"
                f"<td>{p.encode_s:.3f}</td><td>{p.decode_s:.3f}</td></tr>"
            )
        parts.append("</table>")
    return "".join(parts)


def render_report(
    title: str,
    setup: dict[str, Any],
    codecs: list[dict[str, str]],
    points: dict[str, list[RatePoint]],
    suite: MetricSuite,
    bd_table: dict[str, dict[str, float]],
    anchor: str,
    plots: list[Path],
    crop_rows: list[CropRow],
) -> str:
    """The whole report as one HTML string; `codecs` are dicts with name, label and description."""
    labels = {c["name"]: c["label"] for c in codecs}
    head = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
    sections = [
        f"{head}<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        _setup_section(setup),
        _codecs_section(codecs, points),
        _metrics_section(suite),
        _bd_section(bd_table, anchor, labels),
        _plots_section(plots),
        _crops_section(crop_rows),
        _means_section(codecs, points),
        "</body></html>",
    ]
    return "\n".join(sections) + "\n"


def build_crop_rows(
    images: list[Any],
    codecs: list[Any],
    measurements: list[Any],
    reconstruct: Callable[[Any, Any, Any], torch.Tensor],
    targets: list[float],
    count: int,
) -> list[CropRow]:
    """Crops of `count` images spread over the set, at each target bpp: the original, then every codec at
    its setting closest (in log-rate) to the target on that image."""
    chosen = [images[i * len(images) // count] for i in range(min(count, len(images)))]
    rows = []
    for image in chosen:
        top, left = detailed_window(image.pixels)
        for target in targets:
            crops = [Crop("original", image.name, crop(image.pixels, top, left))]
            for codec in codecs:
                candidates = [m for m in measurements if m.codec == codec.name and m.image == image.name]
                if not candidates:
                    continue
                best = min(candidates, key=lambda m: abs(math.log(m.bpp / target)))
                psnr_note = f", {best.metrics['psnr-rgb']:.2f} dB" if "psnr-rgb" in best.metrics else ""
                pixels = crop(reconstruct(codec, best.setting, image), top, left)
                title = f"{codec.label} {codec.setting_label(best.setting)}"
                crops.append(Crop(title, f"{best.bpp:.3f} bpp{psnr_note}", pixels))
            rows.append(CropRow(image.name, target, crops))
    return rows
