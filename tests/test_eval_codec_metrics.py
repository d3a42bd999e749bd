"""SSIMULACRA2 (our torch port of libjxl's tool) and Butteraugli (libjxl's butteraugli_main, when installed)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from onestep.eval.codec_metrics import BUTTERAUGLI_TOOL, ButteraugliMetric
from onestep.eval.metrics import BUTTERAUGLI, build_suite
from onestep.eval.ssimulacra2 import Ssimulacra2, recursive_gaussian_kernel, score_from_total


def _image(height: int = 96, width: int = 128) -> torch.Tensor:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(0)
    base = np.stack([xx * 1.5, yy * 2.0, 255 - xx], axis=-1) + 50 * ((xx // 16 + yy // 16) % 2)[..., None]
    pixels = np.clip(base + 12 * rng.standard_normal((height, width, 3)), 0, 255).astype(np.uint8)
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=quality)
    return torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))).permute(2, 0, 1).contiguous()


def test_recursive_gaussian_kernel_is_a_normalised_symmetric_blur():
    kernel = np.array(recursive_gaussian_kernel(1.5))
    assert len(kernel) % 2 == 1 and kernel.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(kernel, kernel[::-1]) and kernel.argmax() == len(kernel) // 2
    # close to the Gaussian it approximates (Charalampidis 2016)
    t = np.arange(len(kernel)) - len(kernel) // 2
    gaussian = np.exp(-(t**2) / (2 * 1.5**2))
    assert np.abs(kernel - gaussian / gaussian.sum()).max() < 0.01


def test_identical_images_score_100_and_the_mapping_is_the_reference_one():
    image = _image()
    assert Ssimulacra2().score(image, image) == pytest.approx(100.0, abs=1e-6)
    assert score_from_total(0.0) == 100.0 and score_from_total(-1.0) == 100.0
    assert score_from_total(10.0) < score_from_total(1.0) < 100.0


def test_scores_fall_with_jpeg_quality():
    image, metric = _image(), Ssimulacra2()
    prepared = metric.prepare(image)
    scores = [metric.measure(prepared, _jpeg(image, q)) for q in (95, 60, 30, 10)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4, scores
    assert scores[0] - scores[-1] > 10


def test_small_and_odd_sized_images():
    # below 8 px a side the reference computes no scale at all; odd sizes repeat the last row/column
    image = _image(37, 53)
    score = Ssimulacra2().score(image, _jpeg(image, 40))
    assert np.isfinite(score) and score < 100
    assert np.isnan(Ssimulacra2().score(_image(7, 20), _image(7, 20)))


@pytest.fixture(scope="module")
def butteraugli():
    if shutil.which(BUTTERAUGLI_TOOL) is None:
        pytest.skip(f"{BUTTERAUGLI_TOOL} not installed (Debian: apt-get install libjxl-devtools)")
    return ButteraugliMetric(BUTTERAUGLI)


def test_butteraugli_runs_the_reference_tool(butteraugli):
    image = _image()
    same = butteraugli.measure(image, image)
    distances = [butteraugli.measure(image, _jpeg(image, q)) for q in (90, 40, 10)]
    assert same == pytest.approx(0.0, abs=1e-3)
    assert distances == sorted(distances) and distances[0] > same, distances
    assert "libjxl-devtools" in butteraugli.version or BUTTERAUGLI_TOOL in butteraugli.version


def test_butteraugli_is_skipped_with_the_reason_without_its_tool(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    suite = build_suite(["psnr-rgb", "butteraugli-3norm"])
    assert [m.info.key for m in suite.image_metrics] == ["psnr-rgb"]
    assert "butteraugli_main not found" in suite.skipped["butteraugli-3norm"]
