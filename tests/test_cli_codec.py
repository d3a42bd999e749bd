"""`onestep compress / decompress / info` in a fresh process with tiny real models: round trips of every
kind of input, bpp from the real file size, and one-line errors with no output for every bad input.

Starting an interpreter costs seconds, so one module fixture runs all the commands in one new process
and the tests check their results."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import torch
from PIL import Image
from tiny import CliResult, run_cli, save_tiny_model, tiny_pipeline

from onestep import api
from onestep.errors import StreamError
from onestep.images import read_image

RNG = np.random.default_rng(1)


def _noise(h: int, w: int, channels: int = 3) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, channels), dtype=np.uint8)


def _make_inputs(folder: Path) -> None:
    """One file per kind of input the CLI must take."""
    folder.mkdir()
    Image.fromarray(_noise(125, 187)).save(folder / "odd.png")
    Image.fromarray(_noise(1, 1)).save(folder / "one.png")
    Image.fromarray(_noise(64, 64)).save(folder / "square.png")
    Image.fromarray(_noise(20, 30)[:, :, 0]).save(folder / "grey.png")
    (folder / "deep.png").write_bytes(imagecodecs.png_encode(RNG.integers(0, 65536, (17, 9, 3), dtype=np.uint16)))
    Image.fromarray(_noise(33, 40)).save(folder / "photo.jpg", quality=90)
    Image.fromarray(_noise(24, 16)).save(folder / "lossless.webp", lossless=True)
    rgba = _noise(10, 12, 4)
    rgba[:, :, 3] = 255
    Image.fromarray(rgba).save(folder / "opaque.png")
    rgba[0, 0, 3] = 7
    Image.fromarray(rgba).save(folder / "holes.png")


def _make_bad_images(folder: Path, inputs: Path) -> None:
    folder.mkdir()
    (folder / "text.png").write_text("not an image at all\n")
    (folder / "cut.png").write_bytes((inputs / "odd.png").read_bytes()[:500])
    Image.new("L", (2000, 2000)).save(folder / "huge.png")  # a few kB claiming 4 Mpixel; the limit is 512 x 512
    Image.fromarray(np.zeros((4, 4), np.float32), mode="F").save(folder / "float.tif")


def _make_bad_streams(folder: Path, inputs: Path, models: dict[str, Path]) -> None:
    folder.mkdir()
    image = read_image(inputs / "square.png")
    good = api.compress(api.load_model(models["a"]), image)
    (folder / "truncated.osc").write_bytes(good[:-10])
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x04
    (folder / "corrupted.osc").write_bytes(bytes(flipped))
    (folder / "other.osc").write_bytes(api.compress(api.load_model(models["b"]), image))
    (folder / "png.osc").write_bytes((inputs / "one.png").read_bytes())
    (folder / "empty.osc").write_bytes(b"")
    (folder / "good.osc").write_bytes(good)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CliResult]]:
    root = tmp_path_factory.mktemp("cli")
    models = {"a": save_tiny_model(root / "a", seed=0), "b": save_tiny_model(root / "b", seed=1)}
    _make_inputs(root / "inputs")
    _make_bad_images(root / "bad_images", root / "inputs")
    _make_bad_streams(root / "bad_streams", root / "inputs", models)
    model = ("--model", models["a"])
    commands = {
        "compress": ["compress", root / "inputs", "-o", root / "streams", *model],
        "decompress": ["decompress", root / "streams", "-o", root / "pngs", *model],
        "info": ["info", root / "streams/odd.osc", root / "streams/one.osc", "--json"],
        "compress_z_only_to_file": ["compress", root / "inputs/one.png", "-o", root / "new/dir/z.osc", *model,
                                    "--mode", "z-only", "--reconstruction", root / "previews/z.png"],
        "decompress_into_folder": ["decompress", root / "new/dir/z.osc", "-o", root / "new", *model],
        "bad_images": ["compress", root / "bad_images", root / "inputs/one.png", root / "missing.png",
                       "-o", root / "out_images", *model],
        "bad_image_alone": ["compress", root / "bad_images/cut.png", "-o", root / "fresh/cut.osc", *model],
        "bad_streams": ["decompress", root / "bad_streams", "-o", root / "out_streams", *model],
        "bad_stream_alone": ["decompress", root / "bad_streams/other.osc", "-o", root / "other.png", *model],
        "info_bad": ["info", root / "bad_streams/truncated.osc"],
        "missing_model": ["compress", root / "inputs/one.png", "-o", root / "x.osc", "--model", root / "nowhere"],
    }  # fmt: skip
    results = run_cli(list(commands.values()), threads=1)  # as this process: results must match bit for bit
    return root, dict(zip(commands, results))


def _bpp_lines(stdout: str) -> dict[str, tuple[Path, int, float]]:
    found = re.findall(r"^(\S+) -> (\S+): (\d+) bytes, ([\d.]+) bpp$", stdout, re.MULTILINE)
    return {Path(src).name: (Path(dst), int(n), float(bpp)) for src, dst, n, bpp in found}


def test_compress_every_input_kind_reports_real_bpp(session) -> None:
    root, results = session
    done = results["compress"]
    assert done.status == 0, done.stderr
    lines = _bpp_lines(done.stdout)
    sources = sorted(p.name for p in (root / "inputs").iterdir())
    assert sorted(lines) == sources
    reported = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(reported) == 1 and "holes.png" in reported[0] and "alpha is ignored" in reported[0]
    model = api.load_model(root / "a")
    for name in sources:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = read_image(root / "inputs" / name, keep_grey=True)
        assert len(caught) == (name == "holes.png")
        stream, size, bpp = lines[name]
        data = stream.read_bytes()
        assert stream == root / "streams" / (Path(name).stem + ".osc") and size == len(data)
        assert bpp == pytest.approx(8 * len(data) / (image.shape[1] * image.shape[2]), rel=1e-4)
        assert data == api.compress(model, image)  # the CLI and the library make the same bytes


def test_decompress_crops_exactly_and_matches_the_library(session) -> None:
    root, results = session
    assert results["decompress"].status == 0, results["decompress"].stderr
    model = api.load_model(root / "a")
    for stream in sorted((root / "streams").iterdir()):
        reconstruction = read_image(root / "pngs" / (stream.stem + ".png"), keep_grey=True)
        info = api.describe(stream.read_bytes())
        assert reconstruction.shape == (1 if info["grey"] else 3, info["height"], info["width"])
        assert info["grey"] == (stream.stem == "grey")  # grey in, grey out
        assert torch.equal(reconstruction, api.decompress(model, stream.read_bytes()))
    assert read_image(root / "pngs/odd.png").shape == (3, 125, 187)


def test_info_json(session) -> None:
    root, results = session
    assert results["info"].status == 0, results["info"].stderr
    infos = [json.loads(line) for line in results["info"].stdout.splitlines()]
    assert [(i["width"], i["height"], i["model"], i["mode"]) for i in infos] == [
        (187, 125, "tiny", "normal"),
        (1, 1, "tiny", "normal"),
    ]
    for info in infos:
        size = Path(info["file"]).stat().st_size
        assert info["bytes"] == size and info["bpp"] == 8 * size / (info["width"] * info["height"])
        assert sum(info["sections"].values()) + info["overhead_bytes"] == size


def test_single_file_output_paths(session) -> None:
    root, results = session
    for name in ("compress_z_only_to_file", "decompress_into_folder"):
        assert results[name].status == 0, results[name].stderr
    assert api.describe((root / "new/dir/z.osc").read_bytes())["mode"] == "z-only"
    decoded = read_image(root / "new/z.png")  # -o named an existing folder
    assert decoded.shape == (3, 1, 1)
    assert torch.equal(decoded, read_image(root / "previews/z.png"))  # what the encoder side said it would be


def _assert_one_error_line_each(done: CliResult, names: list[str]) -> None:
    assert done.status == len(names)  # the exit status counts the failed files
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    for name in names:
        assert len([line for line in lines if name in line and ": error: " in line]) == 1, (name, done.stderr)
    assert lines[-1].endswith(f"error: {len(names)} of {len(names) + 1} files failed")


def test_bad_images_fail_one_line_each_without_output(session) -> None:
    root, results = session
    done = results["bad_images"]
    _assert_one_error_line_each(done, ["text.png", "cut.png", "huge.png", "float.tif", "missing.png"])
    assert "2000x2000, more than the limit of 262144 pixels" in done.stderr
    assert sorted(p.name for p in (root / "out_images").iterdir()) == ["one.osc"]  # the good one went through
    alone = results["bad_image_alone"]
    assert alone.status == 1 and alone.stderr.count("\n") == 1 and "cut.png: cannot read image" in alone.stderr
    assert not (root / "fresh").exists()  # not even the folder


def test_bad_streams_fail_one_line_each_without_output(session) -> None:
    root, results = session
    done = results["bad_streams"]
    _assert_one_error_line_each(done, ["truncated.osc", "corrupted.osc", "other.osc", "png.osc", "empty.osc"])
    for name, expected in [
        ("truncated.osc", "file is truncated"),
        ("corrupted.osc", "file is corrupted (CRC-32 mismatch)"),
        ("other.osc", "file was made by model 'tiny' (weights"),
        ("png.osc", "not an onestep file"),
        ("empty.osc", "file is empty"),
    ]:
        assert f"{name}: {expected}" in done.stderr
    assert sorted(p.name for p in (root / "out_streams").iterdir()) == ["good.png"]
    alone = results["bad_stream_alone"]
    assert alone.status == 1 and alone.stderr.count("\n") == 1 and "other.osc: file was made by" in alone.stderr
    assert not (root / "other.png").exists()
    info = results["info_bad"]
    assert info.status == 1 and info.stderr.count("\n") == 1 and "truncated.osc: file is truncated" in info.stderr


def test_missing_model_folder(session) -> None:
    root, results = session
    done = results["missing_model"]
    assert done.status == 1 and done.stderr.count("\n") == 1
    assert "model folder" in done.stderr and "nowhere does not exist" in done.stderr
    assert not (root / "x.osc").exists()


def test_library_refuses_streams_of_other_models() -> None:
    image = torch.zeros(3, 8, 8, dtype=torch.uint8)
    a, renamed = tiny_pipeline(0), tiny_pipeline(0, name="other")
    data = api.compress(a, image)
    with pytest.raises(StreamError, match="made by model 'tiny'.*not by the loaded model 'other'"):
        api.decompress(renamed, data)
    assert torch.equal(api.decompress(tiny_pipeline(0), data), api.decompress(a, data))


def test_tiny_model_parts() -> None:
    """SpaceToDepth is exact and parameter-free; ConvGenerator maps codec features to its latent."""
    from onestep.autoencoders.space_to_depth import SpaceToDepth
    from onestep.generators.conv import ConvGenerator

    autoencoder = SpaceToDepth(8)
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    latent = autoencoder.encode(x)
    assert latent.shape == (2, 192, 2, 3) and autoencoder.num_parameters() == 0
    assert torch.equal(latent[0, :, 1, 2].reshape(3, 8, 8), x[0, :, 8:16, 16:24])
    assert torch.equal(autoencoder.decode(latent), x)
    generator = ConvGenerator(32, 192, width=32, depth=2)
    assert generator(torch.randn(1, 32, 2, 3), context=torch.randn(1, 6, 64)).shape == (1, 192, 2, 3)
