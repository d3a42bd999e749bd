"""`onestep import METHOD ...`: convert a published checkpoint with the importer its method registers.

`onestep import-METHOD ...` is the same command (the CLI rewrites it); `onestep import --help` lists the
methods that have an importer.
"""

from __future__ import annotations

import argparse
import importlib

from ..errors import ConfigError
from ..methods.registry import get_method, methods


def importable_methods() -> dict[str, str]:
    """Method name -> importer module, for every registered method that has one."""
    return {name: m.importer for name, m in sorted(methods().items()) if m.importer}


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    importers = importable_methods()
    parser.add_argument("method", choices=sorted(importers), help="the method whose checkpoint this is")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the importer's arguments (METHOD --help)")


def run(name: str, args: argparse.Namespace) -> int:
    method = get_method(args.method)
    if method.importer is None:
        raise ConfigError(f"method {method.name!r} has no importer")
    importer = importlib.import_module(method.importer)
    parser = argparse.ArgumentParser(prog=f"onestep import {method.name}", description=method.description)
    importer.add_arguments(method.name, parser)
    return int(importer.run(method.name, parser.parse_args(args.arguments)) or 0)
