"""Tiny real models for tests, and a helper to run CLI commands in a fresh process.

`tiny_pipeline(seed)` is a complete OneStepPipeline: SpaceToDepth(8) (exact, parameter-free) + the tiny OneDC
codec on its 192-channel latent + ConvGenerator back to that latent, randomly initialised from `seed`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from onestep.autoencoders.space_to_depth import SpaceToDepth
from onestep.generators.conv import ConvGenerator
from onestep.methods.onedc.codec import OneDCCodec
from onestep.methods.pipeline import OneStepPipeline

FACTOR = 8
LATENT_CHANNELS = 3 * FACTOR**2


def tiny_pipeline(seed: int = 0, name: str = "tiny", max_pixels: int = 512 * 512) -> OneStepPipeline:
    torch.manual_seed(seed)
    codec = OneDCCodec(**{**OneDCCodec.tiny().config, "latent_channels": LATENT_CHANNELS})
    generator = ConvGenerator(codec.config["output_channels"], LATENT_CHANNELS, width=32, depth=1)
    return OneStepPipeline(SpaceToDepth(FACTOR), codec, generator, name=name, max_pixels=max_pixels).eval()


def save_tiny_model(folder: Path, seed: int = 0, **kwargs: object) -> Path:
    return tiny_pipeline(seed, **kwargs).save_pretrained(folder)


# Runs `onestep.cli.main` once per command in one fresh interpreter (starting one costs seconds), capturing
# each command's exit status and output.
_CHILD = """
import contextlib, io, json, sys
from onestep.cli import main
results = []
for argv in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as e:
            status = e.code
    results.append(dict(status=status, stdout=out.getvalue(), stderr=err.getvalue()))
json.dump(results, sys.__stdout__)
"""


@dataclass
class CliResult:
    status: int
    stdout: str
    stderr: str


def run_cli(commands: list[list[object]], threads: int | None = None) -> list[CliResult]:
    """Run `onestep ARGS` for each ARGS in order in one new process; `threads` pins OpenMP's thread count
    (pass --threads too to pin torch's)."""
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    argvs = json.dumps([[str(a) for a in command] for command in commands])
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], input=argvs, capture_output=True, text=True, env=env, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"the CLI process crashed:\n{done.stderr}")
    return [CliResult(**r) for r in json.loads(done.stdout)]
