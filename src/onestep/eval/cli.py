"""`onestep eval`: run our models and baseline codecs over an image folder and write a report.

    onestep eval -o results/baselines-kodak                       # all baselines, BD-rates against AVIF
    onestep eval --model mine=models/mine-lo,models/mine-hi --baselines avif,jpeg -o results/mine

Writes into the output folder: `<codec>.json` (CompressAI format) and `<codec>.csv` per codec,
`bd-rate.json`/`.csv`, `matched-rate.json`, `rd-<metric>.png` per metric, `summary.json` and
`report.html`. Results are cached under `<output>/.cache` (or `--cache`), so a re-run only computes what
changed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .baselines import BASELINES, DOWNSCALED_BASELINES, any_baseline
from .cache import ResultCache
from .dataset import PROTOCOLS, load_folder
from .environment import machine, package_versions, patch_protocol
from .matched import matched_rate_table
from .metrics import ALL_METRICS, OFFLINE_METRICS, MetricInfo, build_suite
from .models import ModelCodec
from .plots import plot_metric
from .report import build_crop_rows, render_report
from .results import bd_rate_table, summarize, write_bd_rate, write_codec_files
from .runner import TIMING, Codec, run_evaluation

DEFAULT_IMAGES = "../shared/data/kodak"


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", default=DEFAULT_IMAGES, help="image folder (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="use only the first N images")
    parser.add_argument("-o", "--output", default="results/eval", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--baselines",
        default=",".join(BASELINES + DOWNSCALED_BASELINES),
        help="comma-separated baseline codecs, or 'none' (default: %(default)s)",
    )
    parser.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        help="how images are prepared: "
        + "; ".join(f"{k}: {v}" for k, v in PROTOCOLS.items())
        + " (default: kodak for the default image folder, else full)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="CODEC=V1,V2,...",
        help="override a baseline's sweep, e.g. jpeg=5,20,50 (repeatable)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="[NAME=]DIR[,DIR...]",
        help="one of our models: model folders, one per rate point, or one folder with rate control (repeatable)",
    )
    parser.add_argument("--mode", default="normal", help="compression mode for our models (default: %(default)s)")
    parser.add_argument(
        "--metrics",
        default="all",
        help="'all', 'offline' or comma-separated keys: " + ", ".join(m.key for m in ALL_METRICS),
    )
    parser.add_argument("--metric-weights", help="folder with published metric weights (LPIPS, DISTS, Inception)")
    parser.add_argument("--anchor", default="avif", help="codec the BD-rates are measured against (default: avif)")
    parser.add_argument("--bd-method", choices=("pchip", "cubic"), default="pchip", help="BD-rate curve fit")
    parser.add_argument(
        "--crop-bpp", default="0.05,0.15,0.4", help="target bpps of the report's crops when no model is evaluated"
    )
    parser.add_argument("--crop-images", type=int, default=2, help="how many images to show crops of")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and the codecs")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cache", help="cache folder (default: OUTPUT/.cache)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{what}: expected comma-separated numbers, got {text!r}") from None


def _codecs(args: argparse.Namespace) -> list[Codec]:
    overrides = {}
    for item in args.setting:
        name, _, values = item.partition("=")
        overrides[name.strip()] = _floats(values, f"--setting {item}")
    codecs: list[Codec] = []
    names = [] if args.baselines.strip() in ("", "none") else [n.strip() for n in args.baselines.split(",")]
    for name in names:
        codecs.append(any_baseline(name, overrides.pop(name, None), threads=args.threads))
    if overrides:
        raise ConfigError(f"--setting for {', '.join(overrides)}, which is not among the baselines")
    for item in args.model:
        name, _, folders = item.rpartition("=")
        paths = [p for p in folders.split(",") if p]
        codecs.append(ModelCodec(name or Path(paths[0]).name, paths, mode=args.mode, device=args.device))
    if not codecs:
        raise ConfigError("nothing to evaluate: give --baselines and/or --model")
    if len({c.name for c in codecs}) != len(codecs):
        raise ConfigError("two codecs have the same name; name models with NAME=DIR")
    return codecs


def _metric_keys(text: str) -> list[str] | None:
    if text == "all":
        return None
    if text == "offline":
        return list(OFFLINE_METRICS)
    return [k.strip() for k in text.split(",") if k.strip()]


def trained_on(codec: Codec, infos: list[MetricInfo]) -> tuple[list[str] | None, str]:
    """The metrics whose network one of the codec's training losses used (None: unknown) and where that
    comes from; standard codecs were not trained."""
    networks = getattr(codec, "loss_networks", [])
    note = getattr(codec, "loss_networks_note", "not a learned codec")
    if networks is None:
        return None, note
    return [info.key for info in infos if info.network in networks], note


def run(name: str, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    output = Path(args.output)
    codecs = _codecs(args)
    anchor = args.anchor if any(c.name == args.anchor for c in codecs) else codecs[0].name
    if anchor != args.anchor:
        print(f"anchor {args.anchor!r} is not evaluated; BD-rates are against {anchor!r}")
    protocol = args.protocol or ("kodak" if args.images == DEFAULT_IMAGES else "full")
    suite = build_suite(_metric_keys(args.metrics), args.metric_weights, args.device)
    images = load_folder(args.images, args.limit, protocol)
    for key, reason in suite.skipped.items():
        print(f"skipping {key}: {reason}")
    cache = ResultCache(args.cache or output / ".cache")

    evaluation = run_evaluation(codecs, images, suite, cache, progress=not args.no_progress)
    image_note = f"{len(images)} images from {args.images}, protocol {protocol}"
    points = {c.name: summarize(evaluation, c, suite) for c in codecs}
    marks = {c.name: trained_on(c, suite.infos) for c in codecs}
    for codec in codecs:
        metrics, note = marks[codec.name]
        extra = {"trained_on_metric_features": metrics, "trained_on_note": note}
        write_codec_files(output, codec, points[codec.name], evaluation.measurements, image_note, extra)
    metric_keys = [info.key for info in suite.infos]
    bd_table = bd_rate_table(points, anchor, metric_keys, args.bd_method)
    marked = {c: m for c, (m, _) in marks.items() if m}
    write_bd_rate(output, bd_table, anchor, args.bd_method, marked)
    matched = matched_rate_table(points, anchor, suite.infos)
    matched_document = {"anchor": anchor, "rule": "the anchor's rate point at equal or lower bpp", "codecs": matched}
    (output / "matched-rate.json").write_text(json.dumps(matched_document, indent=2) + "\n")
    labels = {c.name: c.label for c in codecs}
    title = f"Rate-distortion-perception on {Path(args.images).name} ({len(images)} images)"
    plots = [plot_metric(points, labels, key, output / f"rd-{key}.png", title, anchor) for key in metric_keys]

    def reconstruct(codec: Codec, setting: Any, image: Any) -> torch.Tensor:
        data = cache.load(codec.cache_key(setting), image.digest).data
        assert data is not None  # every measured file is in the cache
        return codec.decode(setting, data)

    models = [c for c in codecs if isinstance(c, ModelCodec)]
    crops = build_crop_rows(
        images,
        codecs,
        evaluation.measurements,
        reconstruct,
        list(_floats(args.crop_bpp, "--crop-bpp")),
        args.crop_images,
        models,
    )
    wall = time.perf_counter() - started
    setup = {
        "images": image_note,
        "protocol": {"name": protocol, "description": PROTOCOLS[protocol]},
        "patches (FD-ENL0, FID, KID)": patch_protocol(),
        "versions": {**package_versions(), **suite.versions},
        "machine": machine(args.device, args.threads),
        "timing": TIMING,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "wall time of this run (s)": f"{wall:.1f}",
        "image results measured in this run": f"{evaluation.computed} of {len(evaluation.measurements)} "
        "(the others came from the cache)",
    }
    descriptions = [
        {
            "name": c.name,
            "label": c.label,
            "description": c.description,
            "trained_on": marks[c.name][0],
            "trained_on_note": marks[c.name][1],
        }
        for c in codecs
    ]
    page = render_report(title, setup, descriptions, points, suite, bd_table, anchor, plots, crops, matched)
    (output / "report.html").write_text(page)
    summary = {
        **setup,
        "metrics": metric_keys,
        "skipped": suite.skipped,
        "anchor": anchor,
        "trained_on_metric_features": {c: {"metrics": m, "source": n} for c, (m, n) in marks.items()},
        "wall_s": wall,
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_bd(bd_table, anchor, labels)
    print(f"wrote {output}/report.html and results for {len(codecs)} codecs in {wall:.1f} s")
    return 0


def _print_bd(table: dict[str, Any], anchor: str, labels: dict[str, str]) -> None:
    codecs = [c for c in labels if c != anchor]
    print(f"BD-rate (%) against {labels[anchor]}:")
    print(f"  {'metric':<18}" + "".join(f"{labels[c]:>12}" for c in codecs))
    for key, row in table.items():
        cells = ["n/a" if row[c].value is None else f"{row[c].value:+.1f}" for c in codecs]
        print(f"  {key:<18}" + "".join(f"{cell:>12}" for cell in cells))
    reasons: dict[tuple[str, str], list[str]] = {}  # (codec, reason) -> metrics
    for key, row in table.items():
        for c in codecs:
            if row[c].reason:
                reasons.setdefault((c, row[c].reason), []).append(key)
    for (c, reason), keys in reasons.items():
        print(f"  n/a for {labels[c]} ({', '.join(keys)}): {reason}")
