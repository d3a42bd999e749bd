"""`onestep bench entropy [-o FILE]`, `onestep bench memory ...` and `onestep bench pipeline ...`."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
from pathlib import Path

from ..errors import ConfigError
from ..files import write_atomic

PIPELINE_MODULE = "onestep.bench.pipeline"
MEMORY_MODULE = "onestep.bench.memory"


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    benches = parser.add_subparsers(dest="bench", required=True)
    entropy = benches.add_parser("entropy", help="time the entropy coder and index packing, write JSON")
    entropy.add_argument("-o", "--output", type=Path, help="write the JSON here (it is always printed)")
    entropy.add_argument("--symbols", type=int, default=1_000_000, help="symbols in the random-index test")
    entropy.add_argument("--repeats", type=int, default=7, help="runs per measurement (the median is kept)")
    entropy.add_argument("--note", help="free text stored in the JSON, e.g. about the machine's load")
    memory = benches.add_parser("memory", help="peak RSS of compress/decompress on 3-48 MP images, write JSON")
    importlib.import_module(MEMORY_MODULE).add_arguments(memory)
    if importlib.util.find_spec(PIPELINE_MODULE) is not None:
        pipeline = benches.add_parser("pipeline", help="time whole pipelines, write JSON")
        importlib.import_module(PIPELINE_MODULE).add_arguments(pipeline)


def run(name: str, args: argparse.Namespace) -> int:
    if args.bench == "memory":
        return int(importlib.import_module(MEMORY_MODULE).run(args) or 0)
    if args.bench == "pipeline":
        return int(importlib.import_module(PIPELINE_MODULE).run(args) or 0)
    from .entropy import run_entropy_bench

    if args.symbols < 1 or args.repeats < 1:
        raise ConfigError("--symbols and --repeats must be positive")
    report = run_entropy_bench(num_symbols=args.symbols, repeats=args.repeats, note=args.note)
    emit_report(report, args.output)
    return 0


def emit_report(report: dict, output: Path | None) -> None:
    """Print a benchmark's JSON and, with `-o`, write it (atomically)."""
    text = json.dumps(report, indent=2)
    print(text)
    if output is not None:
        write_atomic(output, (text + "\n").encode())
