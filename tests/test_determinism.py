"""Streams and reconstructions are bit-identical across processes and torch thread counts.

Compress in a process with 2 threads and in one with 1 thread: the files must be identical. Decompress
the 2-thread files in the 1-thread process and the 1-thread files here with 2 threads: the pixels must
equal the reconstruction the encoder side computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tiny import run_cli, save_tiny_model

from onestep import api
from onestep.images import read_image
from onestep.methods.pipeline import OneStepPipeline, pad_image, to_uint8


def encoder_side_reconstruction(model: OneStepPipeline, image: torch.Tensor, mode: str) -> torch.Tensor:
    """What the encoder believes the decoder will show. With codecs that can rebuild the decoder's input
    while encoding (`compress_and_reconstruct`), this does not read the stream back at all."""
    codec = model.codec
    if not hasattr(codec, "compress_and_reconstruct"):
        return api.decompress(model, api.compress(model, image, mode=mode))
    x = pad_image(image[None].float() / 127.5 - 1, model.pad_multiple)
    with torch.no_grad():
        _, out = codec.compress_and_reconstruct(x, model.autoencoder.encode(x), mode=mode)
        decoded = model.autoencoder.decode(model.generator(out.features, out.context))
    return to_uint8(decoded[0, :, : image.shape[1], : image.shape[2]])


def test_streams_and_pixels_do_not_depend_on_process_or_threads(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    images = tmp_path / "images"
    images.mkdir()
    for name, (h, w) in {"odd": (125, 187), "wide": (96, 256), "dot": (1, 1)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"{name}.png")
    model_folder = save_tiny_model(tmp_path / "model")
    m = ("--model", model_folder)

    def compress(threads: int, out: str) -> list[list[object]]:
        return [
            ["compress", images, "-o", tmp_path / out / "normal", *m, "--threads", threads],
            ["compress", images, "-o", tmp_path / out / "z-only", *m, "--threads", threads, "--mode", "z-only"],
        ]

    def decompress(threads: int, streams: str, out: str) -> list[list[object]]:
        return [["decompress", tmp_path / streams / mode, "-o", tmp_path / out / mode, *m, "--threads", threads]
                for mode in ("normal", "z-only")]  # fmt: skip

    results = run_cli(compress(2, "two"), threads=2)
    results += run_cli(compress(1, "one") + decompress(1, "two", "pixels_one"), threads=1)
    assert all(r.status == 0 for r in results), [r.stderr for r in results]

    model = api.load_model(model_folder)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for mode in ("normal", "z-only"):
            for source in sorted(images.iterdir()):
                stream_two = (tmp_path / "two" / mode / f"{source.stem}.osc").read_bytes()
                stream_one = (tmp_path / "one" / mode / f"{source.stem}.osc").read_bytes()
                assert stream_one == stream_two, (mode, source.name)
                image = read_image(source)
                expected = encoder_side_reconstruction(model, image, mode)
                decoded_one = read_image(tmp_path / "pixels_one" / mode / f"{source.stem}.png")
                assert torch.equal(decoded_one, expected), (mode, source.name)
                assert torch.equal(api.decompress(model, stream_one), expected), (mode, source.name)
    finally:
        torch.set_num_threads(previous)
