"""`onestep compress`, `onestep decompress` and `onestep info`.

Inputs are files, folders (their images or .osc files, not recursive) or glob patterns. With one input
file, `-o` is the output file (or an existing folder to put it in); with several, `-o` is a folder and
each output keeps its input's name with the new suffix. Outputs are written atomically: a file that
fails leaves no output behind. With several inputs a failing file is reported and the others go on;
the exit status is then non-zero.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import ConfigError, ImageError, OneStepError, StreamError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pnm")
STREAM_SUFFIX = ".osc"


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "info":
        parser.add_argument("inputs", nargs="+", metavar="FILE", help=".osc files, folders or glob patterns")
        parser.add_argument("--json", action="store_true", help="print one JSON object per file")
        return
    what = "image files" if name == "compress" else ".osc files"
    suffix = STREAM_SUFFIX if name == "compress" else ".png"
    parser.add_argument("inputs", nargs="+", metavar="IN", help=f"{what}, folders or glob patterns")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help=f"the {suffix} file for one input, else a folder"
    )
    parser.add_argument("--model", metavar="DIR", help="model folder (default: the packaged default model)")
    if name == "compress":
        parser.add_argument("--mode", choices=("normal", "z-only"), default="normal", help="z-only: extreme low rate")
        parser.add_argument(
            "--reconstruction",
            metavar="PNG",
            help="also write what the receiver will see, decoded from the new file (a file or a folder, as -o)",
        )
    parser.add_argument("--threads", type=int, metavar="N", help="number of CPU threads for torch")


def expand_inputs(patterns: list[str], suffixes: tuple[str, ...], error: type[OneStepError]) -> tuple[list[Path], bool]:
    """Files named by the patterns, and whether there can be several (then -o is a folder)."""
    files: list[Path] = []
    several = len(patterns) > 1
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            several = True
        elif path.exists() or not glob.has_magic(pattern):
            files.append(path)  # a missing file is reported when it is read
        else:
            files += sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
            several = True
    if not files:
        raise error(f"no input files found in {' '.join(patterns)}")
    return files, several


def plan_outputs(
    inputs: list[Path], several: bool, output: str, suffix: str, option: str = "-o"
) -> list[tuple[Path, Path]]:
    """Pair each input with its output path, refusing two inputs that would write the same file."""
    target = Path(output)
    if not several:
        destination = target / (inputs[0].stem + suffix) if target.is_dir() else target
        return [(inputs[0], destination)]
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{option} {target} must be a folder when there are several inputs")
    pairs, seen = [], {}
    for source in inputs:
        destination = target / (source.stem + suffix)
        if destination in seen:
            raise ConfigError(f"{seen[destination]} and {source} would both be written to {destination}")
        seen[destination] = source
        pairs.append((source, destination))
    return pairs


def _report(command: str, kind: str, message: str) -> None:
    tqdm.write(f"onestep {command}: {kind}: {message}", file=sys.stderr)


def process_all(command: str, pairs: list[tuple[Path, Path]], step: Callable[[Path, Path], str]) -> int:
    """Run `step(source, destination)` over all pairs with a progress bar; print its line or the error."""
    from ..images import AlphaDroppedWarning

    failures = 0
    for source, destination in tqdm(pairs, unit="file", disable=len(pairs) < 2 or None):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AlphaDroppedWarning)
                line = step(source, destination)
            for warning in caught:
                if issubclass(warning.category, AlphaDroppedWarning):
                    _report(command, "warning", str(warning.message))
                else:
                    warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
            tqdm.write(line)
        except OneStepError as e:
            if len(pairs) == 1:
                raise
            failures += 1
            _report(command, "error", str(e))
    if failures:
        raise OneStepError(f"{failures} of {len(pairs)} files failed")
    return 0


def _format(info: dict[str, Any]) -> str:
    sections = ", ".join(f"{name} {size} B" for name, size in info["sections"].items())
    return (
        f"{info['width']}x{info['height']}, {info['bytes']} bytes, {info['bpp']:.5f} bpp, mode {info['mode']}; "
        f"model {info['model']!r} (weights {info['fingerprint']}), format {info['format_version']}; "
        f"sections: {sections}{', ' if sections else ''}container {info['overhead_bytes']} B"
    )


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def run(name: str, args: argparse.Namespace) -> int:
    from .. import api  # imports torch, which `--help` does not need

    if name == "info":
        files, _ = expand_inputs(args.inputs, (STREAM_SUFFIX,), StreamError)

        def show(path: Path, _: Path) -> str:
            info = api.describe_file(path)
            return json.dumps({"file": str(path), **info}) if args.json else f"{path}: {_format(info)}"

        return process_all(name, [(f, f) for f in files], show)

    _set_threads(args.threads)
    if name == "compress":
        files, several = expand_inputs(args.inputs, IMAGE_SUFFIXES, ImageError)
        pairs = plan_outputs(files, several, args.output, STREAM_SUFFIX)
        previews: dict[Path, Path] = {}
        if args.reconstruction is not None:
            previews = dict(plan_outputs(files, several, args.reconstruction, ".png", "--reconstruction"))
        model = api.load_model(args.model)

        def step(source: Path, destination: Path) -> str:
            info = api.compress_file(model, source, destination, args.mode, reconstruction=previews.get(source))
            return f"{source} -> {destination}: {info['bytes']} bytes, {info['bpp']:.5f} bpp"

    else:
        files, several = expand_inputs(args.inputs, (STREAM_SUFFIX,), StreamError)
        pairs = plan_outputs(files, several, args.output, ".png")
        model = api.load_model(args.model)

        def step(source: Path, destination: Path) -> str:
            info = api.decompress_file(model, source, destination)
            return f"{source} -> {destination}: {info['width']}x{info['height']}, {info['bpp']:.5f} bpp"

    return process_all(name, pairs, step)
