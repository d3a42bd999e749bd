"""`onestep train CONFIG.yaml [--override key=value ...] [--resume DIR]`.

Multi-GPU: `accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m onestep.cli train CONFIG.yaml`.
"""

from __future__ import annotations

import argparse

from .config import load_config


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", help="training config: a YAML file (see configs/train/) or METHOD:PRESET (a method's own config)"
    )
    parser.add_argument(
        "--override", "-o", action="append", default=[], metavar="KEY=VALUE", help="e.g. loss.rate.end=2.9"
    )
    parser.add_argument("--resume", metavar="DIR", help="a checkpoint folder, or an output folder (latest checkpoint)")


def run(name: str, args: argparse.Namespace) -> int:
    config = load_config(args.config, args.override)
    from .engine import train  # imported late: `--help` should not load the training stack

    logs = train(config, resume=args.resume)
    summary = ", ".join(f"{k}={v:.4g}" for k, v in logs.items() if k in ("loss", "bpp", "l1", "latent_mse"))
    print(f"trained to step {config['train']['steps']} in {config['output_dir']}: {summary}")
    return 0
