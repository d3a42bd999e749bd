"""`onestep bench memory`: peak resident memory of compress and decompress on large images.

Each measurement is a fresh process running the CLI command (so the numbers include the interpreter, torch
and the model, as a user's process does); its peak RSS is the kernel's high-water mark (`ru_maxrss` of the
child). The test images are a Kodak photo (or `--image`) resized with Lanczos to each size, so the content is
a photograph's, not noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .cli import emit_report

DEFAULT_IMAGE = Path("../shared/data/kodak/kodim23.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="DIR", help="model folder (default: the packaged default model)")
    parser.add_argument("--megapixels", type=float, nargs="+", default=[3, 12, 24, 48])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="the photo to resize")
    parser.add_argument("--tile-size", type=int, help="decoder tile side in pixels")
    parser.add_argument("-o", "--output", type=Path, help="write the JSON here (it is always printed)")
    parser.add_argument("--note", help="free text stored in the JSON, e.g. about the machine's load")


def _child_peak(command: list[str]) -> tuple[float, float]:
    """Run `onestep COMMAND` in a new process; (its peak RSS in bytes, seconds)."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: become the command, so that its rusage is the command's alone
        os.execv(sys.executable, [sys.executable, "-m", "onestep.cli", *command])
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise ConfigError(f"`onestep {' '.join(command)}` failed with status {os.waitstatus_to_exitcode(status)}")
    return usage.ru_maxrss * 1024, seconds


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    if not args.image.is_file():
        raise ConfigError(f"{args.image} does not exist (pass --image)")
    model = ["--model", args.model] if args.model else []
    tile = ["--tile-size", str(args.tile_size)] if args.tile_size else []
    source = Image.open(args.image).convert("RGB")
    aspect = source.width / source.height
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for megapixels in args.megapixels:
            height = round((megapixels * 1e6 / aspect) ** 0.5)
            width = round(height * aspect)
            picture = Path(folder, f"{megapixels:g}mp.png")
            source.resize((width, height), Image.LANCZOS).save(picture, compress_level=1)
            stream, decoded = picture.with_suffix(".osc"), picture.with_name(f"{picture.stem}-decoded.png")
            compress_rss, compress_s = _child_peak(["compress", str(picture), "-o", str(stream), *model])
            decompress_rss, decompress_s = _child_peak(["decompress", str(stream), "-o", str(decoded), *model, *tile])
            row = {
                "megapixels": round(width * height / 1e6, 2),
                "width": width,
                "height": height,
                "bytes": stream.stat().st_size,
                "bpp": 8 * stream.stat().st_size / (width * height),
                "compress_peak_rss_mb": round(compress_rss / 2**20),
                "decompress_peak_rss_mb": round(decompress_rss / 2**20),
                "compress_seconds": round(compress_s, 1),
                "decompress_seconds": round(decompress_s, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            for path in (picture, stream, decoded):
                path.unlink(missing_ok=True)
    report = {
        "what": "peak RSS of `onestep compress` and `onestep decompress` (fresh process each, ru_maxrss)",
        "model": args.model or "packaged default",
        "image": str(args.image),
        "tile_size": args.tile_size,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "note": args.note,
        "results": rows,
    }
    emit_report(report, args.output)
    return 0
