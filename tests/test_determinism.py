"""Streams and reconstructions are bit-identical across processes and torch thread counts.

A process with 2 threads compresses (and decodes its own streams: the encoder side's reconstruction); a
process with 1 thread compresses the same images and decodes the 2-thread streams. The files must be
identical, so decoding the 1-thread files with 2 threads is the encoder side's reconstruction, and the
1-thread decoder must reproduce it pixel for pixel. Both modes, odd sizes and a 1x1 image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tiny import run_cli, save_tiny_model

from onestep.images import read_image

MODES = ("normal", "z-only")


def test_streams_and_pixels_do_not_depend_on_process_or_threads(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    images = tmp_path / "images"
    images.mkdir()
    for name, (h, w) in {"odd": (125, 187), "dot": (1, 1)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"{name}.png")
    model = ("--model", save_tiny_model(tmp_path / "model"))

    def compress(threads: int, out: str, mode: str) -> list[object]:
        streams, previews = tmp_path / out / "streams" / mode, tmp_path / out / "encoder_side" / mode
        return ["compress", images, "-o", streams, "--reconstruction", previews, "--mode", mode, *model,
                "--threads", threads]  # fmt: skip

    def decompress(threads: int, source: str, out: str, mode: str) -> list[object]:
        return ["decompress", tmp_path / source / "streams" / mode, "-o", tmp_path / out / mode, *model,
                "--threads", threads]  # fmt: skip

    results = run_cli([compress(2, "two", mode) for mode in MODES], threads=2)
    one = [compress(1, "one", mode) for mode in MODES] + [decompress(1, "two", "decoded_one", mode) for mode in MODES]
    results += run_cli(one, threads=1)
    assert all(r.status == 0 for r in results), [r.stderr for r in results]

    for mode in MODES:
        for source in sorted(images.iterdir()):
            stream_two = (tmp_path / "two/streams" / mode / f"{source.stem}.osc").read_bytes()
            stream_one = (tmp_path / "one/streams" / mode / f"{source.stem}.osc").read_bytes()
            assert stream_one == stream_two, (mode, source.name)
            encoder_side = read_image(tmp_path / "two/encoder_side" / mode / f"{source.stem}.png")
            decoded = read_image(tmp_path / "decoded_one" / mode / f"{source.stem}.png")
            assert decoded.shape == read_image(source).shape
            assert torch.equal(decoded, encoder_side), (mode, source.name)
