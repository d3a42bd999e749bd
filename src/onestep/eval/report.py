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
from .bdrate import BDRate
from .metrics import METRICS_BY_KEY, MetricSuite
from .results import RatePoint

CROP = 256


@dataclass
class Crop:
    title: str  # the codec: "JPEG"
    caption: str  # its setting and what it reached on this image: "quality=5, 0.153 bpp, 24.1 dB"
    pixels: torch.Tensor  # 3 x CROP x CROP uint8


@dataclass
class CropRow:
    image: str
    heading: str  # "default q=2 at 0.112 bpp" or "around 0.15 bpp"
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


def _format(value: float | None, key: str) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if key in ("psnr-rgb", "fd-enl0", "fid", "ssimulacra2") else f"{value:.4f}"


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
.reasons { margin-top: -0.5em; }
"""


def _setup_value(value: Any) -> str:
    """Nested settings (versions, machine, timing) one per line, "key: value"."""
    if isinstance(value, dict):
        return "<br>".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in value.items())
    return html.escape(str(value))


def _setup_section(setup: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th class='name'>{html.escape(k)}</th><td class='name'>{_setup_value(v)}</td></tr>"
        for k, v in setup.items()
    )
    return f"<table>{rows}</table>"


TRAINED_MARK = "†"


def _trained_note(c: dict[str, Any]) -> str:
    if c.get("trained_on") is None:
        return f"unknown ({c.get('trained_on_note', 'no training.json')})"
    if not c["trained_on"]:
        return "none" if c.get("trained_on_note") == "from training.json" else "— (not a learned codec)"
    return f"{TRAINED_MARK} " + ", ".join(METRICS_BY_KEY[k].label.split(" (")[0] for k in c["trained_on"])


def _codecs_section(codecs: list[dict[str, Any]], points: dict[str, list[RatePoint]]) -> str:
    parts = ["<h2>Codecs</h2><table><tr><th class='name'>codec</th><th class='name'>setup</th>"]
    parts.append("<th>rate points</th><th>mean bpp reached</th><th class='name'>trained on the features of</th></tr>")
    for c in codecs:
        bpps = [p.bpp for p in points[c["name"]]]
        parts.append(
            f"<tr><td class='name'>{html.escape(c['label'])}</td><td class='name'>{html.escape(c['description'])}"
            f"</td><td>{len(bpps)}</td><td>{min(bpps):.3f} – {max(bpps):.3f}</td>"
            f"<td class='name'>{html.escape(_trained_note(c))}</td></tr>"
        )
    return "".join(parts) + "</table>"


METRICS_NOTE = (
    "SSIMULACRA2 and Butteraugli are the codec community's perceptual metrics (what libjxl and libaom tune "
    "against). ENL0-dist, ENL2-dist and FD-ENL0 are offline stand-ins computed on ImageNet EfficientNet-Lite0/"
    "Lite2 features; they are <b>not</b> LPIPS or FID and their values are not comparable with published "
    "LPIPS/FID numbers. FID, KID and FD-ENL0 use the FID/256 patch protocol (256-px patches plus one pass "
    f"shifted by 128 px). {TRAINED_MARK} marks a metric computed on the features of a network that one of the "
    "codec's training losses used: there the codec was partly optimised for the metric itself."
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
    "fit of log-rate); negative = fewer bits than the anchor. Where there is none, the reason is listed below "
    "the table."
)


def _short(key: str) -> str:
    return METRICS_BY_KEY[key].label.split(" (")[0]


def _marked(codec: dict[str, Any], key: str) -> str:
    return (
        f" <span title='trained on this metric&#39;s features'>{TRAINED_MARK}</span>"
        if key in (codec.get("trained_on") or [])
        else ""
    )


def _bd_section(bd_table: dict[str, dict[str, BDRate]], anchor: str, codecs: list[dict[str, Any]]) -> str:
    labels = {c["name"]: c["label"] for c in codecs}
    parts = [f"<h2>BD-rate against {html.escape(labels.get(anchor, anchor))} (the anchor)</h2>"]
    parts.append(f"<p class='note'>{BD_NOTE}</p><table><tr><th class='name'>codec</th>")
    parts += [f"<th>{html.escape(_short(k))}</th>" for k in bd_table]
    parts.append("</tr>")
    reasons: dict[tuple[str, str], list[str]] = {}  # (codec, reason) -> metrics: one footnote each
    for codec in [c for c in codecs if c["name"] != anchor]:
        name = codec["name"]
        cells = []
        for key in bd_table:
            result = bd_table[key][name]
            mark = _marked(codec, key)
            if result.value is not None:
                cells.append(f"<td class='{'good' if result.value < 0 else 'bad'}'>{result.value:+.1f} %{mark}</td>")
            else:
                footnote = (name, str(result.reason))
                reasons.setdefault(footnote, []).append(_short(key))
                cells.append(f"<td>n/a <sup>{list(reasons).index(footnote) + 1}</sup>{mark}</td>")
        parts.append(f"<tr><td class='name'>{html.escape(labels[name])}</td>{''.join(cells)}</tr>")
    parts.append("</table>")
    if reasons:
        items = "".join(
            f"<li>{html.escape(labels[name])} ({html.escape(', '.join(keys))}): {html.escape(reason)}</li>"
            for (name, reason), keys in reasons.items()
        )
        parts.append(f"<ol class='note reasons'>{items}</ol>")
    return "".join(parts)


MATCHED_NOTE = (
    "Each rate point against the anchor's rate point at equal or lower mean bpp (the anchor never gets more "
    "bits). Green: better than the anchor there."
)


def _matched_section(
    matched: dict[str, list[dict[str, Any]]], anchor: str, codecs: list[dict[str, Any]], suite: MetricSuite
) -> str:
    """Only our models (learned codecs): the baselines are compared by their BD-rates."""
    labels = {c["name"]: c["label"] for c in codecs}
    models = [c for c in codecs if c["name"] in matched and c.get("trained_on_note") != "not a learned codec"]
    if not models:
        return ""
    parts = [f"<h2>Matched rate against {html.escape(labels[anchor])}</h2><p class='note'>{MATCHED_NOTE}</p>"]
    parts.append("<table><tr><th class='name'>codec</th><th class='name'>rate point</th><th>bpp</th>")
    parts.append(f"<th class='name'>{html.escape(labels[anchor])} at ≤ bpp</th>")
    parts += [f"<th>{html.escape(_short(i.key))}<br>ours / anchor</th>" for i in suite.infos] + ["</tr>"]
    for codec in models:
        for row in matched[codec["name"]]:
            head = (
                f"<tr><td class='name'>{html.escape(codec['label'])}</td><td class='name'>"
                f"{html.escape(row['setting'])}</td><td>{row['bpp']:.4f}</td>"
            )
            if row["anchor"] is None:
                parts.append(f"{head}<td class='name' colspan='{1 + len(suite.infos)}'>"
                             f"no comparison: {html.escape(row['why_not'])}</td></tr>")  # fmt: skip
                continue
            cells = [f"<td class='name'>{html.escape(row['anchor']['setting'])}, {row['anchor']['bpp']:.4f} bpp</td>"]
            for info in suite.infos:
                entry = row[info.key]
                ours, theirs = entry["value"], entry["anchor"]
                text = "n/a" if None in (ours, theirs) else f"{_format(ours, info.key)} / {_format(theirs, info.key)}"
                css = {True: "good", False: "bad"}.get(entry["better"], "")
                cells.append(f"<td class='{css}'>{text}{_marked(codec, info.key)}</td>")
            parts.append(head + "".join(cells) + "</tr>")
    return "".join(parts) + "</table>"


def _plots_section(plots: list[Path]) -> str:
    parts = ["<h2>Rate-distortion-perception curves</h2><div class='plots'>"]
    for path in plots:
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">')
    return "".join(parts) + "</div>"


CROPS_NOTE = (
    "256 × 256 crops (shown enlarged) from each image's most detailed region. With models: one row per rate "
    "point of every model, every other codec at its setting whose bpp on this image is closest to the "
    "model's; without: rows at target rates, codecs with no setting within a factor of 1.5 of the target left "
    "out. Each crop is labelled with its own bpp on this image."
)


def _crops_section(crop_rows: list[CropRow]) -> str:
    parts = [f"<h2>Crops</h2><p class='note'>{CROPS_NOTE}</p>"]
    for row in crop_rows:
        parts.append(f"<h3>{html.escape(row.image)}: {html.escape(row.heading)}</h3><div class='crops'>")
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
    codecs: list[dict[str, Any]],
    points: dict[str, list[RatePoint]],
    suite: MetricSuite,
    bd_table: dict[str, dict[str, BDRate]],
    anchor: str,
    plots: list[Path],
    crop_rows: list[CropRow],
    matched: dict[str, list[dict[str, Any]]],
) -> str:
    """The whole report as one HTML string; `codecs` are dicts with name, label, description, trained_on
    (metric keys, None if unknown) and trained_on_note."""
    head = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
    sections = [
        f"{head}<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        _setup_section(setup),
        _codecs_section(codecs, points),
        _metrics_section(suite),
        _bd_section(bd_table, anchor, codecs),
        _matched_section(matched, anchor, codecs, suite),
        _plots_section(plots),
        _crops_section(crop_rows),
        _means_section(codecs, points),
        "</body></html>",
    ]
    return "\n".join(sections) + "\n"


def _crop(codec: Any, m: Any, image: Any, window: tuple[int, int], reconstruct: Callable[..., torch.Tensor]) -> Crop:
    psnr_note = f", {m.metrics['psnr-rgb']:.2f} dB" if "psnr-rgb" in m.metrics else ""
    pixels = crop(reconstruct(codec, m.setting, image), *window)
    return Crop(codec.label, f"{codec.setting_label(m.setting)}, {m.bpp:.3f} bpp{psnr_note}", pixels)


def build_crop_rows(
    images: list[Any],
    codecs: list[Any],
    measurements: list[Any],
    reconstruct: Callable[[Any, Any, Any], torch.Tensor],
    targets: list[float],
    count: int,
    models: list[Any] | None = None,
) -> list[CropRow]:
    """Crops of `count` images spread over the set. With `models`: one row per rate point of every model,
    the other codecs at their setting closest in log-rate to the model's bpp on that image. Without: one row
    per target bpp, each codec at its closest setting if that is within a factor of 1.5 of the target."""
    chosen = [images[i * len(images) // count] for i in range(min(count, len(images)))]
    rows = []
    for image in chosen:
        window = detailed_window(image.pixels)
        on_image = {c.name: [m for m in measurements if m.codec == c.name and m.image == image.name] for c in codecs}
        if models:
            centres = [(model, m) for model in models for m in on_image[model.name]]
            plan = [(m.bpp, f"{model.label} {model.setting_label(m.setting)} at {m.bpp:.3f} bpp", model.name, m)
                    for model, m in centres]  # fmt: skip
        else:
            plan = [(target, f"around {target:g} bpp", None, None) for target in targets]
        for bpp, heading, centre_codec, centre in plan:
            crops = [Crop("original", image.name, crop(image.pixels, *window))]
            for codec in codecs:
                if codec.name == centre_codec:  # the model of this row comes right after the original
                    crops.insert(1, _crop(codec, centre, image, window, reconstruct))
                    continue
                if not on_image[codec.name]:
                    continue
                best = min(on_image[codec.name], key=lambda m: abs(math.log(m.bpp / bpp)))
                if centre is None and abs(math.log(best.bpp / bpp)) > math.log(1.5):
                    continue
                crops.append(_crop(codec, best, image, window, reconstruct))
            rows.append(CropRow(image.name, heading, crops))
    return rows
