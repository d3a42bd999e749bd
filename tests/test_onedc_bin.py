"""The OneDC reference's `.bin` files: its entropy tables and rANS coder reproduced byte for byte, the file
layout, and the CLI's `--to onedc-bin` / `--from onedc-bin`.

The vectors in tests/fixtures/onedc-bin were written by the reference's own C++ coder, tables, z packing and
header writer (benchmarks/onedc-bin-vectors.py) from the tiny OneDC model's symbols."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import run_cli, save_tiny_model

from onestep import api
from onestep.bitstream import read_container
from onestep.entropy.packing import pack_indices
from onestep.entropy.tables import gaussian_tables
from onestep.errors import ConfigError, StreamError
from onestep.images import read_image, write_png
from onestep.methods.onedc.bin_format import read_bin, write_bin
from onestep.methods.onedc.codec import REFERENCE_MODE
from onestep.methods.onedc.model import onedc_tiny
from onestep.methods.onedc.reference_coder import (
    REFERENCE_TABLE_SHA256,
    TABLE_PATCH,
    RansDecoder,
    RansEncoder,
    ReferenceGaussian,
    reference_tables,
)
from onestep.methods.pipeline import EncodedImage

FIXTURES = Path(__file__).parent / "fixtures" / "onedc-bin"
RECORD = json.loads((FIXTURES / "vectors.json").read_text())
VECTORS = sorted(RECORD["vectors"])


def load_vector(name: str) -> tuple[bytes, dict[str, np.ndarray]]:
    with np.load(FIXTURES / f"{name}.npz") as arrays:
        return (FIXTURES / f"{name}.bin").read_bytes(), dict(arrays)


# --- tables and coder ------------------------------------------------------------------------------------


def test_reference_table_is_the_digests():
    tables = reference_tables()
    assert tables.sha256() == REFERENCE_TABLE_SHA256 == RECORD["reference_table_sha256"]
    ours = gaussian_tables().cdf_array()
    assert sorted({row for row, *_ in TABLE_PATCH}) == np.flatnonzero((ours != tables.cdf).any(1)).tolist()
    assert (tables.cdf[:, 0] == 0).all() and (tables.cdf[np.arange(256), tables.sizes - 1] == 1 << 16).all()


def test_coder_reproduces_the_digests_vector():
    symbols = torch.tensor([0, 1, -1, 3, -7, 0, 120, -300, 2, 0])
    indexes = torch.tensor([0, 10, 50, 100, 128, 200, 255, 255, 64, 0])
    encoder = RansEncoder()
    encoder.add(symbols, indexes)
    data = encoder.finish()
    assert data.hex() == "01ed0a643532ee20a78a979f82"
    decoder = RansDecoder(data)
    assert decoder.read(indexes).tolist() == symbols.tolist()
    decoder.finish()


def test_coder_round_trip_with_escapes_in_several_chunks():
    rng = np.random.default_rng(1)
    chunks = []
    for n in (1, 500, 2000):
        indexes = rng.integers(0, 256, n)
        symbols = np.round(rng.normal(0, 3 * np.exp(indexes / 45))).astype(np.int64)
        symbols[:3] = [30000, -30000, 777][: len(symbols)]
        chunks.append((symbols, indexes))
    encoder = RansEncoder()
    for symbols, indexes in chunks:
        encoder.add(symbols, indexes)
    data = encoder.finish()
    decoder = RansDecoder(data)
    for symbols, indexes in chunks:
        assert decoder.read(indexes).numpy().tolist() == symbols.tolist()
    decoder.finish()
    for damaged in (data[:-1], data[:1] + bytes([data[1] ^ 0x40]) + data[2:], b"\x11" + data[1:], data[:4]):
        with pytest.raises(StreamError):
            decoder = RansDecoder(damaged)
            for _, indexes in chunks:
                decoder.read(indexes)
            decoder.finish()


def test_scale_index_is_the_references_truncated_float32_log():
    step = (np.log(64.0) - np.log(0.11)) / 255
    scales = torch.tensor([-3.0, 0.0, 0.11, 0.1101, 0.5, 1.0, 7.3, 64.0, 1e6, float("nan")])
    expected = [0, 0, 0, 0, int((np.log(0.5) - np.log(0.11)) / step), int(-np.log(0.11) / step)]
    index = ReferenceGaussian().scale_index(scales).tolist()
    assert index[:6] == expected and index[7:9] == [255, 255] and index[9] == 0


# --- the reference's vectors -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", VECTORS)
def test_our_bin_is_byte_identical_for_the_references_symbols(name):
    """Machine-independent: the symbols and table indices the reference's coder was given, coded by ours."""
    data, arrays = load_vector(name)
    assert hashlib.sha256(data).hexdigest() == RECORD["vectors"][name]["sha256"]
    encoder = RansEncoder()
    for k in range(4):
        encoder.add(arrays[f"symbols_{k}"], arrays[f"indexes_{k}"])
    height, width = arrays["image"].shape[-2:]
    encoded = EncodedImage(
        {"z": pack_indices(arrays["z_indices"], 14), "y": encoder.finish()}, height, width, REFERENCE_MODE
    )
    assert write_bin(encoded) == data
    parsed = read_bin(data)
    assert parsed.sections == encoded.sections and (parsed.height, parsed.width) == (height, width)
    decoder = RansDecoder(parsed.sections["y"])
    for k in range(4):
        assert np.array_equal(decoder.read(arrays[f"indexes_{k}"]).numpy(), arrays[f"symbols_{k}"])
    decoder.finish()


@pytest.fixture(scope="module")
def tiny_onedc():
    torch.manual_seed(0)  # as benchmarks/onedc-bin-vectors.py builds it
    return onedc_tiny(lora_rank=0).eval()


@pytest.mark.parametrize("name", VECTORS)
def test_tiny_onedc_writes_the_references_file_and_reads_it_like_osc(tiny_onedc, name):
    data, arrays = load_vector(name)
    image = torch.from_numpy(arrays["image"])
    encoded, reconstruction = tiny_onedc.compress_and_reconstruct(image, mode=REFERENCE_MODE)
    assert write_bin(encoded) == data
    from_bin = tiny_onedc.decompress(read_bin(data))
    assert torch.equal(from_bin, reconstruction)  # what the encoder promised, bit for bit
    from_osc = tiny_onedc.decompress(tiny_onedc.compress(image, mode="normal"))
    assert within_a_grey_level(from_bin, from_osc)


def within_a_grey_level(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The .bin's entropy path runs on the reference's channels-last layout, the .osc's on the contiguous one:
    the same symbols, means a few 1e-7 apart, so the pixels may differ by one grey level here and there."""
    return a.shape == b.shape and int((a.int() - b.int()).abs().max()) <= 1


# --- the file layout -------------------------------------------------------------------------------------


def test_read_bin_refuses_what_is_not_a_bin_file():
    data, _ = load_vector(VECTORS[0])
    height, width, y_size, _ = struct.unpack(">IIII", data[:16])
    y_flag = 16
    cases = {
        "truncated": data[:-1],
        "unexpected bytes": data + b"\0",
        "header": data[:10],
        "absurd": struct.pack(">IIII", 0, width, y_size, 0) + data[16:],
        "one-part": data[:y_flag] + b"\x11" + data[y_flag + 1 :],
    }
    for expected, damaged in cases.items():
        with pytest.raises(StreamError, match=expected):
            read_bin(damaged)
    with_caption = struct.pack(">IIII", height, width, y_size, 3) + data[16:] + b"abc"
    assert read_bin(with_caption).sections == read_bin(data).sections  # the reference ignores it too


def test_write_bin_refuses_other_modes():
    data, _ = load_vector(VECTORS[0])
    encoded = read_bin(data)
    for mode, sections in (("normal", encoded.sections), ("z-only", {"z": encoded.sections["z"]})):
        with pytest.raises(ConfigError, match="reference-rans"):
            write_bin(EncodedImage(sections, encoded.height, encoded.width, mode))
    with pytest.raises(ConfigError, match="14-bit"):
        write_bin(EncodedImage({"z": b"\0", "y": encoded.sections["y"]}, 1000, 1000, REFERENCE_MODE))


def test_cli_compresses_to_and_decompresses_from_bin(tmp_path):
    folder = save_tiny_model(tmp_path / "model")
    image = tmp_path / "photo.png"
    write_png(image, torch.from_numpy(load_vector(VECTORS[0])[1]["image"]))
    out = tmp_path / "out"
    results = run_cli(
        [
            ["compress", image, "-o", out / "photo.bin", "--to", "onedc-bin", "--model", folder,
             "--reconstruction", out / "preview.png"],
            ["decompress", out / "photo.bin", "-o", out / "photo.png", "--from", "onedc-bin", "--model", folder],
            ["decompress", out / "photo.bin", "-o", out / "x.png", "--from", "onedc-bin"],
            ["compress", image, "-o", out / "z.bin", "--to", "onedc-bin", "--mode", "z-only", "--model", folder],
        ],
        threads=1,
    )  # fmt: skip
    assert [r.status for r in results[:2]] == [0, 0], [r.stderr for r in results]
    assert "--model" in results[2].stderr and results[2].status != 0
    assert "--to onedc-bin" in results[3].stderr and results[3].status != 0 and not (out / "z.bin").exists()
    bin_data = (out / "photo.bin").read_bytes()
    assert f"{len(bin_data)} bytes" in results[0].stdout
    decoded = read_image(out / "photo.png")
    assert torch.equal(decoded, read_image(out / "preview.png"))
    model = api.load_model(folder)
    osc = api.compress(model, read_image(image))
    assert within_a_grey_level(decoded, api.decompress(model, osc))  # the .osc of the same image
    assert read_bin(bin_data).sections["z"] == read_container(osc)[1].sections["z"]  # same indices, same packing
