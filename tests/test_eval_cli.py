"""`onestep eval` end to end on two small images: our tiny models (through onestep.api) and two baselines,
real files, the results formats, the cache, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import save_tiny_model

from onestep.cli import main


def _write_images(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:288].astype(np.float32)
    for i in range(2):
        smooth = np.stack([xx * 0.8, yy * 0.9, (xx + yy) * 0.45], axis=-1) + 30 * i
        texture = 20 * rng.standard_normal((256, 288, 3))
        Image.fromarray(np.clip(smooth + texture, 0, 255).astype(np.uint8)).save(folder / f"img{i}.png")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    _write_images(root / "images")
    save_tiny_model(root / "tiny-a", seed=0)
    save_tiny_model(root / "tiny-b", seed=1)
    options = (
        "--baselines jpeg,webp --setting jpeg=10,40,80 --setting webp=10,50,85 --threads 1 --no-progress "
        "--metrics psnr-rgb,ms-ssim-rgb,enl0-dist,fd-enl0 --crop-images 1"
    )
    models = f"tiny={root / 'tiny-a'},{root / 'tiny-b'}"
    argv = ["eval", "--images", str(root / "images"), "-o", str(root / "out"), "--model", models, *options.split()]
    assert main(argv) == 0
    first = json.loads((root / "out" / "jpeg.json").read_text())
    assert main(argv) == 0  # second run: everything from the cache
    return root, first


def test_writes_compressai_json_csv_bd_rate_plots_and_report(evaluated):
    root, _ = evaluated
    out = root / "out"
    for name in ("jpeg", "webp", "tiny"):
        document = json.loads((out / f"{name}.json").read_text())
        assert set(document) == {"name", "description", "results"}
        results = document["results"]
        for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "enl0-dist", "fd-enl0", "encoding_time", "decoding_time"):
            assert key in results and len(results[key]) == (2 if name == "tiny" else 3)
    jpeg = json.loads((out / "jpeg.json").read_text())["results"]
    assert jpeg["bpp"] == sorted(jpeg["bpp"]) and jpeg["psnr-rgb"] == sorted(jpeg["psnr-rgb"])
    assert jpeg["enl0-dist"] == sorted(jpeg["enl0-dist"], reverse=True)
    bd = json.loads((out / "bd-rate.json").read_text())
    assert bd["anchor"] == "jpeg" and set(bd["bd_rate"]["psnr-rgb"]) == {"webp", "tiny"}
    for key in ("psnr-rgb", "ms-ssim-rgb", "enl0-dist", "fd-enl0"):
        assert (out / f"rd-{key}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert "BD-rate against JPEG" in page and page.count("data:image/png;base64") >= 4 + 2 * 4


def test_bpp_counts_every_byte_of_a_real_file(evaluated):
    root, _ = evaluated
    rows = list(csv.DictReader((root / "out" / "jpeg.csv").open()))
    assert len(rows) == 3 * (2 + 1)  # per setting: two images, then the mean
    row = next(r for r in rows if r["setting"] == "quality=40" and r["image"] == "img1")
    buffer = io.BytesIO()  # the same encoder, run here, gives the same file
    Image.open(root / "images" / "img1.png").save(buffer, format="JPEG", quality=40, subsampling=2, optimize=True)
    assert int(row["bytes"]) == len(buffer.getvalue())
    assert float(row["bpp"]) == pytest.approx(8 * len(buffer.getvalue()) / (256 * 288), rel=1e-5)
    means = [r for r in rows if r["image"] == "mean"]
    assert all(r["fd-enl0"] for r in means) and not any(r["fd-enl0"] for r in rows if r["image"] != "mean")


def test_rerun_reuses_the_cache(evaluated):
    root, first = evaluated
    second = json.loads((root / "out" / "jpeg.json").read_text())
    # timings are measured once and stored: a re-encode would give different ones
    assert second["results"]["encoding_time"] == first["results"]["encoding_time"]
    assert second == first
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["image results measured in this run"].startswith("0 of 16 ")  # (3 + 3 + 2 settings) x 2 images


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", "--images", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "--no-progress"]) == 1
    assert main(["eval", "--baselines", "jpeg2000", "-o", str(tmp_path / "o")]) == 1
    assert main(["eval", "--metrics", "lpips", "--images", str(tmp_path), "-o", str(tmp_path / "o")]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("onestep eval: error: ") for line in errors)
    assert "does not exist" in errors[0] and "jpeg2000" in errors[1] and "'lpips'" in errors[2]
