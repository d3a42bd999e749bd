"""`onestep eval`: run our models and baseline codecs over an image folder and write a report.

    onestep eval --baselines jpeg,webp,avif,jxl -o results/baselines-kodak
    onestep eval --model onedc=models/onedc-lo,models/onedc-hi --baselines jpeg -o results/onedc

Writes into the output folder: `<codec>.json` (CompressAI format) and `<codec>.csv` per codec,
`bd-rate.json`/`.csv`, `rd-<metric>.png` per metric, `summary.json` and `report.html`. Results are
cached under `<output>/.cache` (or `--cache`), so a re-run only computes what changed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import ConfigError
from .baselines import BASELINES, baseline
from .cache import ResultCache
from .dataset import load_folder
from .matched import matched_rate_table
from .metrics import ALL_METRICS, OFFLINE_METRICS, build_suite
from .models import ModelCodec
from .plots import plot_metric
from .report import build_crop_rows, render_report
from .results import bd_rate_table, summarize, write_bd_rate, write_codec_files
from .runner import Codec, run_evaluation

DEFAULT_IMAGES = "../shared/data/kodak"


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", default=DEFAULT_IMAGES, help="image folder (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="use only the first N images")
    parser.add_argument("-o", "--output", default="results/eval", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--baselines", default=",".join(BASELINES), help="comma-separated baseline codecs, or 'none' (default: all)"
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
        help="one of our models: model folders, one per rate point (repeatable)",
    )
    parser.add_argument("--mode", default="normal", help="compression mode for our models (default: %(default)s)")
    parser.add_argument(
        "--metrics",
        default="all",
        help="'all', 'offline' or comma-separated keys: " + ", ".join(m.key for m in ALL_METRICS),
    )
    parser.add_argument("--metric-weights", help="folder with published metric weights (LPIPS, DISTS, Inception)")
    parser.add_argument("--anchor", default="jpeg", help="codec the BD-rates are measured against (default: jpeg)")
    parser.add_argument("--bd-method", choices=("pchip", "cubic"), default="pchip", help="BD-rate curve fit")
    parser.add_argument("--crop-bpp", default="0.15,0.4", help="target bpps of the report's crops")
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
        codecs.append(baseline(name, overrides.pop(name, None), threads=args.threads))
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


def run(name: str, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    output = Path(args.output)
    codecs = _codecs(args)
    anchor = args.anchor if any(c.name == args.anchor for c in codecs) else codecs[0].name
    if anchor != args.anchor:
        print(f"anchor {args.anchor!r} is not evaluated; BD-rates are against {anchor!r}")
    suite = build_suite(_metric_keys(args.metrics), args.metric_weights, args.device)
    images = load_folder(args.images, args.limit)
    for key, reason in suite.skipped.items():
        print(f"skipping {key}: {reason}")
    cache = ResultCache(args.cache or output / ".cache")

    evaluation = run_evaluation(codecs, images, suite, cache, progress=not args.no_progress)
    image_note = f"{len(images)} images from {args.images}"
    points = {c.name: summarize(evaluation, c, suite) for c in codecs}
    for codec in codecs:
        write_codec_files(output, codec, points[codec.name], evaluation.measurements, image_note)
    metric_keys = [info.key for info in suite.infos]
    bd_table = bd_rate_table(points, anchor, metric_keys, args.bd_method)
    write_bd_rate(output, bd_table, anchor, args.bd_method)
    matched = matched_rate_table(points, anchor, suite.infos)
    (output / "matched-rate.json").write_text(json.dumps({"anchor": anchor, "codecs": matched}, indent=2) + "\n")
    labels = {c.name: c.label for c in codecs}
    title = f"Rate-distortion-perception on {Path(args.images).name} ({len(images)} images)"
    plots = [plot_metric(points, labels, key, output / f"rd-{key}.png", title) for key in metric_keys]

    def reconstruct(codec: Codec, setting: Any, image: Any) -> torch.Tensor:
        data = cache.load(codec.cache_key(setting), image.digest).data
        assert data is not None  # every measured file is in the cache
        return codec.decode(setting, data)

    crops = build_crop_rows(
        images,
        codecs,
        evaluation.measurements,
        reconstruct,
        list(_floats(args.crop_bpp, "--crop-bpp")),
        args.crop_images,
    )
    wall = time.perf_counter() - started
    setup = {
        "images": image_note,
        "onestep": __version__,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads, device {args.device}",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "wall time of this run (s)": f"{wall:.1f}",
        "image results measured in this run": f"{evaluation.computed} of {len(evaluation.measurements)} "
        "(the others came from the cache)",
    }
    descriptions = [{"name": c.name, "label": c.label, "description": c.description} for c in codecs]
    page = render_report(title, setup, descriptions, points, suite, bd_table, anchor, plots, crops)
    (output / "report.html").write_text(page)
    summary = {**setup, "metrics": metric_keys, "skipped": suite.skipped, "anchor": anchor, "wall_s": wall}
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_bd(bd_table, anchor, labels)
    print(f"wrote {output}/report.html and results for {len(codecs)} codecs in {wall:.1f} s")
    return 0


def _print_bd(table: dict[str, dict[str, float]], anchor: str, labels: dict[str, str]) -> None:
    codecs = [c for c in labels if c != anchor]
    print(f"BD-rate (%) against {labels[anchor]}:")
    print(f"  {'metric':<14}" + "".join(f"{labels[c]:>10}" for c in codecs))
    for key, row in table.items():
        print(f"  {key:<14}" + "".join(f"{row.get(c, float('nan')):>+10.1f}" for c in codecs))
