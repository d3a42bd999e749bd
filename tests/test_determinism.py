"""Streams are bit-identical across processes and torch thread counts; pixels are bit-identical at a fixed
thread count and within one grey level across thread counts.

The entropy path (encoder, hyper-decoder, prior, symbol coding) runs on one intra-op thread; what comes after
it (codec synthesis, generator, autoencoder decoder) at the caller's thread count. A process with 2 threads
compresses (with the encoder side's reconstruction); a process with 1 thread compresses the same images,
reconstructs them and decodes the 2-thread streams; a second 2-thread process decodes them too. Both modes,
odd sizes and a 1x1 image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tiny import run_cli, save_tiny_model

from onestep.images import read_image
from onestep.methods.pipeline import deterministic, rendering

MODES = ("normal", "z-only")


def test_streams_do_not_depend_on_threads_and_pixels_only_within_a_grey_level(tmp_path: Path) -> None:
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
    results += run_cli([decompress(2, "two", "decoded_two", mode) for mode in MODES], threads=2)
    assert all(r.status == 0 for r in results), [r.stderr for r in results]

    for mode in MODES:
        for source in sorted(images.iterdir()):
            name = f"{source.stem}.png"
            stream_two = (tmp_path / "two/streams" / mode / f"{source.stem}.osc").read_bytes()
            stream_one = (tmp_path / "one/streams" / mode / f"{source.stem}.osc").read_bytes()
            assert stream_one == stream_two, (mode, source.name)  # the same symbols whatever the threads
            two = read_image(tmp_path / "two/encoder_side" / mode / name)
            one = read_image(tmp_path / "one/encoder_side" / mode / name)
            assert one.shape == read_image(source).shape
            # bit-exact at a fixed thread count, in other processes, encoder side or decoder side
            assert torch.equal(read_image(tmp_path / "decoded_one" / mode / name), one), (mode, source.name)
            assert torch.equal(read_image(tmp_path / "decoded_two" / mode / name), two), (mode, source.name)
            # within one grey level across thread counts
            assert (one.int() - two.int()).abs().max() <= 1, (mode, source.name)


def test_the_entropy_path_runs_on_one_thread_and_the_rest_at_the_callers_count() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with deterministic():
            assert torch.get_num_threads() == 1
            with deterministic():  # nested: still one thread, and the outer level restores
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with rendering():
            assert torch.get_num_threads() == 2
            with deterministic():
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
