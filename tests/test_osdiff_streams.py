"""Real `.osc` files with the tiny OSDiff through the CLI: made in one process, read in another, the
encoder's reconstruction's pixels (at the same thread count; within a grey level across thread counts); any
size (pad and crop exactly), bpp from the file size; refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import run_cli

from onestep import api
from onestep.images import read_image
from onestep.methods.onedc.model import onedc_tiny
from onestep.methods.osdiff.model import osdiff_tiny

SIZES = {"odd": (70, 100), "one": (1, 1), "tall": (130, 64)}  # name: (height, width)


def _osdiff_model(folder: Path) -> Path:
    torch.manual_seed(0)
    pipeline = osdiff_tiny()
    for conv in (*pipeline.generator.control.enc_zero_convs, *pipeline.generator.control.dec_zero_convs):
        torch.nn.init.normal_(conv.weight, std=0.05)  # as after training: the control module matters
    return pipeline.save_pretrained(folder)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("osdiff_cli")
    model = _osdiff_model(root / "osdiff")
    rng = np.random.default_rng(3)
    (root / "in").mkdir()
    for name, (h, w) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "in" / f"{name}.png")
    (root / "bad").mkdir()
    onedc = onedc_tiny().eval()
    (root / "bad" / "onedc.osc").write_bytes(api.compress(onedc, read_image(root / "in" / "odd.png")))
    compress = [
        ["compress", root / "in" / f"{name}.png", "-o", root / "osc" / f"{name}.osc", "--model", model,
         "--reconstruction", root / "encoder_side" / f"{name}.png"]
        for name in SIZES
    ]  # fmt: skip
    made = run_cli([*compress, ["info", *(root / "osc" / f"{n}.osc" for n in SIZES), "--json"]], threads=1)
    for name in SIZES:
        good = (root / "osc" / f"{name}.osc").read_bytes()
        (root / "bad" / f"{name}_truncated.osc").write_bytes(good[:-7])
    read = run_cli(
        [
            ["decompress", root / "osc", "-o", root / "decoded", "--model", model],
            ["decompress", root / "bad", "-o", root / "bad_out", "--model", model],
        ],
        threads=2,
    )
    return root, model, made, read


def test_streams_decode_in_another_process_to_the_encoder_side_pixels(session):
    root, model, made, read = session
    assert all(r.status == 0 for r in made[:-1]), [r.stderr for r in made]
    assert read[0].status == 0, read[0].stderr
    pipeline = api.load_model(model)
    for name, (h, w) in SIZES.items():
        decoded = np.asarray(Image.open(root / "decoded" / f"{name}.png"))
        assert decoded.shape == (h, w, 3)  # padded to 64, cropped exactly
        encoder_side = np.asarray(Image.open(root / "encoder_side" / f"{name}.png"))  # made on one thread
        assert np.abs(decoded.astype(int) - encoder_side.astype(int)).max() <= 1  # decoded on two threads
        in_process = api.decompress(pipeline, (root / "osc" / f"{name}.osc").read_bytes())  # on one thread
        assert np.array_equal(encoder_side, in_process.permute(1, 2, 0).numpy())


def test_bpp_is_the_file_size_over_the_original_pixels(session):
    root, _, made, _ = session
    for (name, (h, w)), result in zip(SIZES.items(), made, strict=False):
        size = (root / "osc" / f"{name}.osc").stat().st_size
        found = re.search(r": (\d+) bytes, ([\d.]+) bpp", result.stdout)
        assert found and int(found.group(1)) == size
        assert float(found.group(2)) == pytest.approx(8 * size / (h * w), rel=1e-4)
    entries = [json.loads(line) for line in made[-1].stdout.splitlines()]  # one JSON object per file
    assert len(entries) == len(SIZES)
    assert all(set(entry["sections"]) == {"z", "y", "seed"} and entry["sections"]["seed"] == 4 for entry in entries)
    assert all(entry["model"] == "osdiff-tiny" for entry in entries)


def test_bad_and_foreign_streams_are_refused_in_one_line(session):
    root, _, _, read = session
    done = read[1]
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert done.status == 1 + len(SIZES)
    onedc = [line for line in lines if "onedc.osc" in line]
    assert len(onedc) == 1 and "made by model 'onedc-tiny'" in onedc[0] and "osdiff-tiny" in onedc[0]
    for name in SIZES:
        assert len([line for line in lines if f"{name}_truncated.osc" in line and "truncated" in line]) == 1
    assert not (root / "bad_out").exists() or not any((root / "bad_out").iterdir())
