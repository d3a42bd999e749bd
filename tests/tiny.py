"""Tiny real models for tests, and a helper to run CLI commands in a fresh process.

`tiny_pipeline(seed)` is a complete OneStepPipeline: SpaceToDepth(8) (exact, parameter-free) + a small codec
on its 192-channel latent + ConvGenerator back to that latent, randomly initialised from `seed`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from onestep.autoencoders.space_to_depth import SpaceToDepth
from onestep.codecs.base import CodecOutput, LatentCodec
from onestep.errors import StreamError
from onestep.generators.conv import ConvGenerator
from onestep.methods.pipeline import OneStepPipeline

FACTOR = 8
LATENT_CHANNELS = 3 * FACTOR**2
TESTS = Path(__file__).resolve().parent


class ToyCodec(LatentCodec):
    """THROWAWAY until OneDCCodec is importable: int8 samples of a 1x1 projection, no entropy coding."""

    pad_multiple = 64
    modes = ("normal", "z-only")

    def __init__(self, latent_channels: int = LATENT_CHANNELS, channels: int = 4, features: int = 32) -> None:
        super().__init__()
        self.channels = channels
        self.analysis = nn.Conv2d(latent_channels, channels, 1)
        self.synthesis = nn.Conv2d(channels, features, 3, padding=1)

    @torch.no_grad()
    def compress(self, image: torch.Tensor, latent: torch.Tensor, mode: str = "normal") -> dict[str, bytes]:
        y = (self.analysis(latent) * 8).round().clamp(-127, 127).to(torch.int8)
        if mode == "z-only":
            y = y[:, :, ::8, ::8]
        return {"y" if mode == "normal" else "z": y.numpy().tobytes()}

    @torch.no_grad()
    def decompress(self, sections: dict[str, bytes], padded_size: tuple[int, int], mode: str = "normal") -> CodecOutput:
        step = FACTOR * (8 if mode == "z-only" else 1)
        h, w = padded_size[0] // step, padded_size[1] // step
        data = sections.get("y" if mode == "normal" else "z", b"")
        if len(data) != self.channels * h * w:
            raise StreamError("toy stream has the wrong length")
        y = torch.frombuffer(bytearray(data), dtype=torch.int8).float().reshape(1, self.channels, h, w) / 8
        if mode == "z-only":
            y = y.repeat_interleave(8, 2).repeat_interleave(8, 3)
        return CodecOutput(self.synthesis(y))


def tiny_pipeline(seed: int = 0, name: str = "tiny", max_pixels: int = 512 * 512) -> OneStepPipeline:
    torch.manual_seed(seed)
    codec = ToyCodec()
    generator = ConvGenerator(32, LATENT_CHANNELS, width=32, depth=1)
    return OneStepPipeline(SpaceToDepth(FACTOR), codec, generator, name=name, max_pixels=max_pixels).eval()


def save_tiny_model(folder: Path, seed: int = 0, **kwargs: object) -> Path:
    return tiny_pipeline(seed, **kwargs).save_pretrained(folder)


# Runs `onestep.cli.main` once per command in one fresh interpreter (starting one costs seconds), capturing
# each command's exit status and output.
_CHILD = """
import contextlib, io, json, sys
sys.path.insert(0, {tests!r})
import tiny
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
    script = _CHILD.format(tests=str(TESTS))
    done = subprocess.run(
        [sys.executable, "-c", script], input=argvs, capture_output=True, text=True, env=env, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"the CLI process crashed:\n{done.stderr}")
    return [CliResult(**r) for r in json.loads(done.stdout)]
