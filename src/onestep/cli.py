"""`onestep` command line. Subcommands live in their own modules and are imported only when used,
so `onestep info` does not pay for importing the training stack."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Idle OpenMP threads otherwise busy-wait: on a shared or loaded CPU that makes torch several times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import OneStepError

# name -> (module, one-line help). Each module defines add_arguments(name, parser) and run(name, args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "compress": ("onestep.commands.codec", "compress images into .osc files"),
    "decompress": ("onestep.commands.codec", "decompress .osc files into PNG images"),
    "info": ("onestep.commands.codec", "describe .osc files: model, size, bpp, sections"),
    "verify": ("onestep.commands.codec", "check model folders' weights against their stored fingerprint"),
    "bench": ("onestep.bench.cli", "time entropy coding or whole pipelines, write JSON"),
    "eval": ("onestep.eval.cli", "rate-distortion-perception evaluation against baseline codecs"),
    "train": ("onestep.train.cli", "train a model from a YAML config"),
    "pack": ("onestep.train.pack", "pack image folders into compact training shards"),
    "import": ("onestep.commands.importing", "convert a published checkpoint of a method into a model folder"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: onestep COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `onestep COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from . import __version__

        print(f"onestep {__version__}")
        return 0
    name = argv[0]
    if name.startswith("import-") and name not in COMMANDS:  # `import-METHOD ...` is `import METHOD ...`
        argv[:1] = ["import", name.removeprefix("import-")]
        name = "import"
    if name not in COMMANDS:
        print(f"onestep: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"onestep {name}", description=COMMANDS[name][1])
    module.add_arguments(name, parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(name, args) or 0)
    except OneStepError as e:
        print(f"onestep {name}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a path the OS refuses before any file is processed (too long, no permission, ...)
        from .files import describe_os_error

        print(f"onestep {name}: error: {describe_os_error(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"onestep {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
