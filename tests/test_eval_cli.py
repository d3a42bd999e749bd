"""`onestep eval` end to end on two small images: our tiny models (through onestep.api) and two baselines,
real files, the results formats, the cache, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import re
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
    for name, seed in (("tiny-a", 0), ("tiny-b", 1), ("plain", 2)):
        save_tiny_model(root / name, seed=seed)
    for name in ("tiny-a", "tiny-b"):  # trained with an EfficientNet-Lite0 loss; "plain" does not say
        (root / name / "training.json").write_text(json.dumps({"loss_networks": ["efficientnet-lite0"]}))
    options = (
        "--baselines jpeg,webp --setting jpeg=10,40,80 --setting webp=10,50,85 --threads 1 --no-progress "
        "--metrics psnr-rgb,ms-ssim-rgb,ssimulacra2,enl0-dist,fd-enl0 --crop-images 1"
    )
    models = ["--model", f"tiny={root / 'tiny-a'},{root / 'tiny-b'}", "--model", f"plain={root / 'plain'}"]
    argv = ["eval", "--images", str(root / "images"), "-o", str(root / "out"), *models, *options.split()]
    assert main(argv) == 0
    first = json.loads((root / "out" / "jpeg.json").read_text())
    assert main(argv) == 0  # second run: everything from the cache
    return root, first


def test_writes_compressai_json_csv_bd_rate_plots_and_report(evaluated):
    root, _ = evaluated
    out = root / "out"
    for name in ("jpeg", "webp", "tiny", "plain"):
        document = json.loads((out / f"{name}.json").read_text())
        assert set(document) == {"name", "description", "results", "trained_on_metric_features", "trained_on_note"}
        results = document["results"]
        keys = ("bpp", "psnr-rgb", "ms-ssim-rgb", "ssimulacra2", "enl0-dist", "fd-enl0", "encoding_time")
        for key in keys:
            assert key in results and len(results[key]) == {"tiny": 2, "plain": 1}.get(name, 3)
    jpeg = json.loads((out / "jpeg.json").read_text())["results"]
    assert jpeg["bpp"] == sorted(jpeg["bpp"]) and jpeg["psnr-rgb"] == sorted(jpeg["psnr-rgb"])
    assert jpeg["enl0-dist"] == sorted(jpeg["enl0-dist"], reverse=True)
    bd = json.loads((out / "bd-rate.json").read_text())
    assert bd["anchor"] == "jpeg" and set(bd["bd_rate"]["psnr-rgb"]) == {"webp", "tiny", "plain"}
    # one rate point: no BD-rate, and the reason instead of a NaN
    assert bd["bd_rate"]["psnr-rgb"]["plain"] is None
    assert (
        bd["why_not"]["psnr-rgb"]["plain"]
        == "the codec has 1 rate point with a value; a pchip BD-rate needs 2 per curve"
    )
    for key in ("psnr-rgb", "ms-ssim-rgb", "ssimulacra2", "enl0-dist", "fd-enl0"):
        assert (out / f"rd-{key}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert "BD-rate against JPEG (the anchor)" in page and page.count("data:image/png;base64") >= 5 + 3 * 4
    assert not re.search(r"\bnan\b", re.sub(r"base64,[^\"]*", "", page).lower())  # no NaN without a reason
    assert "the codec has 1 rate point with a value" in page
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"]["name"] == "full" and summary["patches (FD-ENL0, FID, KID)"]["shift"] == 128
    assert summary["timing"]["warm_up"].startswith("our models: loaded and run once untimed")
    assert {"torch", "Pillow", "imagecodecs", "ssimulacra2"} <= set(summary["versions"])
    assert summary["machine"]["threads"] == 1 and summary["machine"]["device"] == "cpu"


def test_metrics_on_a_models_training_network_are_marked(evaluated):
    out = evaluated[0] / "out"
    tiny, plain = (json.loads((out / f"{n}.json").read_text()) for n in ("tiny", "plain"))
    assert tiny["trained_on_metric_features"] == ["enl0-dist", "fd-enl0"]
    assert tiny["trained_on_note"] == "from training.json"
    assert plain["trained_on_metric_features"] is None and plain["trained_on_note"].startswith(
        "unknown: no training.json"
    )
    assert json.loads((out / "jpeg.json").read_text())["trained_on_metric_features"] == []
    bd = json.loads((out / "bd-rate.json").read_text())
    assert bd["trained_on_metric_features"] == {"tiny": ["enl0-dist", "fd-enl0"]}
    page = (out / "report.html").read_text()
    # in the BD-rate table, the tiny row's ENL0-dist and FD-ENL0 cells carry the mark, no other cell does
    bd_table = page[page.index("<h2>BD-rate against") : page.index("<h2>Matched rate")]
    tiny_row = bd_table[bd_table.index("<td class='name'>tiny</td>") :].split("</tr>")[0]
    assert tiny_row.count("†") == 2 and bd_table.count("†") == 2
    assert "unknown (unknown: no training.json" in page and "† ENL0-dist, FD-ENL0" in page


def test_crops_show_every_rate_point_of_every_model_with_one_label_per_codec(evaluated):
    page = (evaluated[0] / "out" / "report.html").read_text()
    crops = page[page.index("<h2>Crops</h2>") : page.index("<h2>Mean values")]
    headings = [h.split("</h3>")[0] for h in crops.split("<h3>")[1:]]
    assert len(headings) == 3  # one image: tiny's two rate points and plain's one
    assert all(" at " in h and h.endswith(" bpp") for h in headings)
    for row in crops.split("<h3>")[1:]:  # each codec once, labelled by its name alone; the setting in the caption
        titles = re.findall(r"<figcaption><b>([^<]*)</b><br>([^<]*)</figcaption>", row)
        assert sorted(t for t, _ in titles) == ["JPEG", "WebP", "original", "plain", "tiny"]
        assert all(caption.count(" bpp") == 1 for title, caption in titles if title != "original")


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
    assert summary["image results measured in this run"].startswith("0 of 18 ")  # (3 + 3 + 2 + 1) x 2 images


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", "--images", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "--no-progress"]) == 1
    assert main(["eval", "--baselines", "jpeg2000", "-o", str(tmp_path / "o")]) == 1
    assert main(["eval", "--metrics", "lpips", "--images", str(tmp_path), "-o", str(tmp_path / "o")]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("onestep eval: error: ") for line in errors)
    assert "does not exist" in errors[0] and "jpeg2000" in errors[1] and "'lpips'" in errors[2]
