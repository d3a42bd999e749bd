"""`onestep compress`, `onestep decompress`, `onestep info` and `onestep verify`.

Inputs are files, folders (their images or .osc files, not recursive) or glob patterns. With one input file,
`-o` is the output file, or a folder when it ends with `/` or is an existing folder; with several, `-o` is a
folder and each output keeps its input's name with the new suffix. Nothing is overwritten unless `--force`, and
an output is never one of the inputs. Outputs are written atomically: a file that fails leaves no output
behind (a stream and its `--reconstruction` are written together or not at all). Each failing file is reported
on one line (OS errors too: read-only folder, full disk, ...); the others go on, and the exit status is the
number of failed files (at most 100), 0 when all went through.

`info` reads headers only and imports no torch.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ImageError, OneStepError, StreamError
from ..files import describe_os_error
from ..methods.registry import resolve, stream_formats

STREAM_SUFFIX = ".osc"
OUTPUT_SUFFIX = {"compress": STREAM_SUFFIX, "decompress": ".png"}


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "info":
        parser.add_argument("inputs", nargs="+", metavar="FILE", help=".osc files, folders or glob patterns")
        parser.add_argument("--json", action="store_true", help="print one JSON object per file")
        return
    if name == "verify":
        parser.add_argument("models", nargs="+", metavar="DIR", help="model folders")
        return
    what = "image files" if name == "compress" else ".osc files"
    suffix = OUTPUT_SUFFIX[name]
    parser.add_argument("inputs", nargs="+", metavar="IN", help=f"{what}, folders or glob patterns")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help=f"the {suffix} file for one input, else a folder"
    )
    parser.add_argument("-f", "--force", action="store_true", help="overwrite existing output files")
    if name == "compress":
        parser.add_argument("--model", metavar="DIR", help="model folder (default: the packaged default model)")
        parser.add_argument("--to", choices=("osc", *stream_formats()), default="osc", help="output file format")
        parser.add_argument("--mode", default="normal", help="the model's coding mode (e.g. z-only)")
        rate = parser.add_mutually_exclusive_group()
        rate.add_argument("--quality", type=int, metavar="N", help="rate setting of models with rate control")
        rate.add_argument("--bpp", type=float, metavar="X", help="the highest quality whose file is <= X bpp")
        parser.add_argument(
            "--reconstruction",
            metavar="PNG",
            help="also write what the receiver will see (a file or a folder, as -o)",
        )
    else:
        parser.add_argument("--model", metavar="DIR", help="model folder (default: the packaged model the file names)")
        parser.add_argument(
            "--from", dest="source_format", choices=("osc", *stream_formats()), default="osc", help="input format"
        )
        parser.add_argument("--preview", action="store_true", help="the model's fast preview decode (SODEC)")
        parser.add_argument(
            "--dtype",
            choices=("float32", "bfloat16"),
            default="float32",
            help="precision after the entropy path (bfloat16: faster on AVX512-BF16/AMX CPUs; pixels not float32's, "
            "up to 16 grey levels off on OneDC's test weights)",
        )
    parser.add_argument("--tile-size", type=int, metavar="PX", help="decoder tile side in pixels (less = less memory)")
    parser.add_argument("--threads", type=int, metavar="N", help="torch CPU threads after the entropy path (one)")


def expand_inputs(patterns: list[str], suffixes: tuple[str, ...], error: type[OneStepError]) -> tuple[list[Path], bool]:
    """Files named by the patterns, and whether there can be several (then -o is a folder)."""
    files: list[Path] = []
    several = len(patterns) > 1
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            if not found:
                raise error(f"{path}: no {' / '.join(suffixes)} files in this folder")
            files += found
            several = True
        elif path.exists() or not glob.has_magic(pattern):
            files.append(path)  # a missing file is reported when it is read
        else:
            files += sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
            several = True
    if not files:
        raise error(f"no input files found in {' '.join(patterns)}")
    return files, several


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def plan_outputs(
    inputs: list[Path], several: bool, output: str, suffix: str, option: str = "-o"
) -> list[tuple[Path, Path]]:
    """Pair each input with its output path. Refused: a file output with the wrong suffix, a file output for
    several inputs, two inputs writing the same output, an output that is an input."""
    target = Path(output)
    as_folder = several or output.endswith(("/", os.sep)) or target.is_dir()
    if not as_folder:
        if target.suffix.lower() != suffix:
            raise ConfigError(f"{option} {output}: the output must end in {suffix} (or be a folder: end it with /)")
        pairs = [(inputs[0], target)]
    else:
        if target.exists() and not target.is_dir():
            raise ConfigError(f"{option} {output} must be a folder when there are several inputs")
        if target.suffix.lower() in (".osc", ".png") and not target.exists():
            raise ConfigError(f"{option} {output} looks like a file name, but there are several inputs: give a folder")
        pairs, seen = [], {}
        for source in inputs:
            destination = target / (source.stem + suffix)
            if destination in seen:
                raise ConfigError(f"{seen[destination]} and {source} would both be written to {destination}")
            seen[destination] = source
            pairs.append((source, destination))
    for _, destination in pairs:
        for source in inputs:
            if _same_file(source, destination):
                raise ConfigError(f"{option} {destination} is an input file: refusing to overwrite it")
    return pairs


def _write(line: str, file: Any = None) -> None:
    """Print above the progress bar when there is one (tqdm is only imported for batches: it costs start-up)."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is None:
        print(line, file=file or sys.stdout, flush=True)
    else:
        tqdm.tqdm.write(line, file=file)


def _report(command: str, kind: str, message: str) -> None:
    _write(f"onestep {command}: {kind}: {message}", file=sys.stderr)


def process_all(command: str, pairs: list[tuple[Path, Path]], step: Callable[[Path, Path], str]) -> int:
    """Run `step(source, destination)` over all pairs (with a progress bar for several); print its line or the
    error. Returns the number of failed files (capped at 100, as an exit status)."""
    items: Any = pairs
    if len(pairs) > 1:
        from tqdm import tqdm

        items = tqdm(pairs, unit="file", disable=None)
    failures = 0
    for source, destination in items:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                line = step(source, destination)
            for warning in caught:
                if warning.category.__name__ == "AlphaDroppedWarning":
                    _report(command, "warning", str(warning.message))
                elif not issubclass(warning.category, (DeprecationWarning, PendingDeprecationWarning)):
                    warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
            _write(line)
        except OneStepError as e:
            failures += 1
            _report(command, "error", str(e))
        except OSError as e:
            failures += 1
            _report(command, "error", describe_os_error(e))
        except MemoryError:
            failures += 1
            _report(command, "error", f"{source}: out of memory (try a smaller --tile-size)")
    if failures and len(pairs) > 1:
        _report(command, "error", f"{failures} of {len(pairs)} files failed")
    return min(failures, 100)


def _format(info: dict[str, Any]) -> str:
    sections = ", ".join(f"{name} {size} B" for name, size in info["sections"].items())
    grey = ", grey" if info.get("grey") else ""
    return (
        f"{info['width']}x{info['height']}{grey}, {info['bytes']} bytes, {info['bpp']:.5f} bpp, mode {info['mode']}; "
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


def _describe_file(path: Path) -> dict[str, Any]:
    from ..bitstream import describe

    try:
        if path.is_dir():
            raise StreamError("is a folder, not a file")
        if not path.is_file():
            raise StreamError("no such file")
        return describe(path.read_bytes())
    except StreamError as e:
        raise StreamError(f"{path}: {e}") from None


def _info(args: argparse.Namespace) -> int:
    files, _ = expand_inputs(args.inputs, (STREAM_SUFFIX,), StreamError)

    def show(path: Path, _: Path) -> str:
        info = _describe_file(path)
        return json.dumps({"file": str(path), **info}) if args.json else f"{path}: {_format(info)}"

    return process_all("info", [(f, f) for f in files], show)


def _verify(args: argparse.Namespace) -> int:
    from ..modeling import WEIGHTS_NAME, ModelMixin, state_dict_fingerprint, stored_fingerprint

    def check(folder: Path, _: Path) -> str:
        model = ModelMixin.from_pretrained(folder)
        stored = stored_fingerprint(folder / WEIGHTS_NAME)
        actual = state_dict_fingerprint(model.state_dict())
        if stored is None:
            return f"{folder}: weights {actual.hex()} (no fingerprint stored: written by an older onestep)"
        if stored != actual:
            raise OneStepError(f"{folder}: weights are damaged: fingerprint {actual.hex()}, stored {stored.hex()}")
        return f"{folder}: ok, weights {actual.hex()}"

    return process_all("verify", [(Path(m), Path(m)) for m in args.models], check)


def run(name: str, args: argparse.Namespace) -> int:
    if name == "info":
        return _info(args)
    if name == "verify":
        return _verify(args)
    if args.tile_size is not None and args.tile_size < 1:
        raise ConfigError(f"--tile-size must be at least 1, got {args.tile_size}")
    _set_threads(args.threads)
    if name == "compress":
        return _compress(args)
    return _decompress(args)


def _compress(args: argparse.Namespace) -> int:
    from .. import api  # imports torch, which `--help` does not need
    from ..images import IMAGE_SUFFIXES

    files, several = expand_inputs(args.inputs, IMAGE_SUFFIXES, ImageError)
    file_format = None if args.to == "osc" else resolve(stream_formats()[args.to])
    if file_format and (args.mode != "normal" or args.quality is not None or args.bpp is not None):
        raise ConfigError(f"--to {args.to} writes {file_format.DESCRIPTION}: no --mode, --quality or --bpp")
    pairs = plan_outputs(files, several, args.output, file_format.SUFFIX if file_format else STREAM_SUFFIX)
    previews: dict[Path, Path] = {}
    if args.reconstruction is not None:
        previews = dict(plan_outputs(files, several, args.reconstruction, ".png", "--reconstruction"))
        clashes = {p for _, p in pairs} & set(previews.values())
        if clashes:
            raise ConfigError(f"-o and --reconstruction both name {sorted(clashes)[0]}")
    model = api.load_model(args.model)
    if file_format:

        def write_file(source: Path, destination: Path) -> str:
            info = file_format.compress_file(model, source, destination, previews.get(source), overwrite=args.force)
            return f"{source} -> {destination}: {info['bytes']} bytes, {info['bpp']:.5f} bpp"

        return process_all("compress", pairs, write_file)
    model.check_mode(args.mode, ConfigError)  # before any file: one error, not one per file
    if args.bpp is not None and args.bpp <= 0:
        raise ConfigError(f"--bpp must be positive, got {args.bpp}")

    def step(source: Path, destination: Path) -> str:
        max_bytes = None
        if args.bpp is not None:
            from ..images import image_size

            width, height = image_size(source)
            max_bytes = int(args.bpp * width * height / 8)
        info = api.compress_file(
            model,
            source,
            destination,
            args.mode,
            reconstruction=previews.get(source),
            quality=args.quality,
            max_bytes=max_bytes,
            overwrite=args.force,
        )
        return f"{source} -> {destination}: {info['bytes']} bytes, {info['bpp']:.5f} bpp"

    return process_all("compress", pairs, step)


def _decompress(args: argparse.Namespace) -> int:
    from .. import api  # imports torch, which `--help` does not need

    file_format = None if args.source_format == "osc" else resolve(stream_formats()[args.source_format])
    if file_format and args.model is None:
        raise ConfigError(f"--from {args.source_format} needs --model: its files do not name the model that made them")
    suffix = file_format.SUFFIX if file_format else STREAM_SUFFIX
    files, several = expand_inputs(args.inputs, (suffix,), StreamError)
    pairs = plan_outputs(files, several, args.output, ".png")
    if args.dtype != "float32" and args.model is None:
        raise ConfigError(f"--dtype {args.dtype} needs --model")
    dtype = getattr(api.torch, args.dtype)
    model = api.load_model(args.model, decode_only=True, render_dtype=dtype) if args.model is not None else None
    if file_format:

        def read_file(source: Path, destination: Path) -> str:
            info = file_format.decompress_file(
                model, source, destination, overwrite=args.force, decode_tile=args.tile_size
            )
            return f"{source} -> {destination}: {info['width']}x{info['height']}, {info['bpp']:.5f} bpp"

        return process_all("decompress", pairs, read_file)

    def step(source: Path, destination: Path) -> str:
        info = api.decompress_file(
            model, source, destination, overwrite=args.force, decode_tile=args.tile_size, preview=args.preview
        )
        return f"{source} -> {destination}: {info['width']}x{info['height']}, {info['bpp']:.5f} bpp"

    return process_all("decompress", pairs, step)
