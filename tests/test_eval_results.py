"""From measurements to rate points: per-image means, set-level distribution metrics, small images."""

import math

import pytest
import torch

from onestep.eval.baselines import baseline
from onestep.eval.frechet import frechet_distance
from onestep.eval.metrics import FD_ENL0, PSNR, DistributionMetric, MetricSuite, PixelMetric
from onestep.eval.results import compressai_json, summarize
from onestep.eval.runner import EvalRun, Measurement


def _suite() -> MetricSuite:
    fd = DistributionMetric(FD_ENL0, "enl0", lambda r, f: {"fd-enl0": frechet_distance(r, f)})
    return MetricSuite(image_metrics=[PixelMetric(PSNR, lambda a, b: 0.0)], distribution_metrics=[fd])


def test_means_over_images_and_fd_over_all_patches_of_a_setting():
    codec = baseline("jpeg", settings=(10,))
    g = torch.Generator().manual_seed(0)
    run = EvalRun()
    real, fake = {}, {}
    for name, num_bytes, value in (("a", 100, 30.0), ("b", 300, 34.0), ("small", 50, 20.0)):
        run.measurements.append(Measurement("jpeg", 10, name, 800, num_bytes, 0.1, 0.2, {"psnr-rgb": value}))
        patches = 0 if name == "small" else 3  # an image smaller than a patch has none
        real[name] = torch.randn(patches, 4, generator=g) if patches else torch.empty(0)
        fake[name] = real[name] + 0.5 if patches else torch.empty(0)
        run.reference_features[name] = {"enl0": real[name]}
        run.features[("jpeg", 10, name)] = {"enl0": fake[name]}
    (point,) = summarize(run, codec, _suite())
    assert point.bpp == pytest.approx(8 * (100 + 300 + 50) / 800 / 3)
    assert point.values["psnr-rgb"] == pytest.approx(28.0)
    assert point.values["fd-enl0"] == pytest.approx(4 * 0.25)  # pooled sets differ by a shift of 0.5 per dim
    document = compressai_json(codec, [point], "3 images")
    assert document["results"]["quality"] == [10] and document["results"]["fd-enl0"] == [pytest.approx(1.0)]


def test_distribution_metric_is_nan_without_patches_and_null_in_json():
    codec = baseline("jpeg", settings=(10,))
    run = EvalRun()
    run.measurements.append(Measurement("jpeg", 10, "tiny", 64, 10, 0.1, 0.1, {"psnr-rgb": 25.0}))
    run.reference_features["tiny"] = {"enl0": torch.empty(0)}
    run.features[("jpeg", 10, "tiny")] = {"enl0": torch.empty(0)}
    (point,) = summarize(run, codec, _suite())
    assert math.isnan(point.values["fd-enl0"])
    assert compressai_json(codec, [point], "1 image")["results"]["fd-enl0"] == [None]
