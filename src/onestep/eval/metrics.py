"""The metric suite of an evaluation: which metrics run, how each is computed, which were skipped and why.

Two kinds of metric:
- per-image, full-reference (PSNR, MS-SSIM, ENL0-dist, LPIPS, DISTS): the report averages them over
  images. Each has `prepare(reference)` (run once per reference image, e.g. its deep features) and
  `measure(prepared, reconstruction)`;
- distribution metrics (FD-ENL0, FID, KID) on the FID/256 patches of all images of a rate point:
  a feature extractor runs on the patches of every image, and the distance compares the pooled sets.

Published metrics whose weight files are absent are skipped with the reason in `suite.skipped`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .fidelity import ms_ssim, psnr
from .frechet import frechet_distance, kernel_distance
from .patches import fid_patches
from .weights import MissingWeightsError

# Stored with every cached result; bump it when a metric's definition changes, so old values are recomputed.
METRICS_VERSION = 2  # SSIMULACRA2, Butteraugli and ENL2-dist are new keys: old values stay valid


@dataclass(frozen=True)
class MetricInfo:
    key: str  # results key, CompressAI style ("psnr-rgb")
    label: str  # axis label
    higher_is_better: bool
    network: str | None = None  # the network whose features it compares, as training.json names it


ENL0, ALEXNET, VGG16, INCEPTION = "efficientnet-lite0", "alexnet", "vgg16", "inception-v3"


PSNR = MetricInfo("psnr-rgb", "PSNR (dB)", True)
MS_SSIM = MetricInfo("ms-ssim-rgb", "MS-SSIM", True)
SSIMULACRA2 = MetricInfo("ssimulacra2", "SSIMULACRA2", True)
BUTTERAUGLI = MetricInfo("butteraugli-3norm", "Butteraugli (3-norm, libjxl butteraugli_main)", False)
ENL0_DIST = MetricInfo("enl0-dist", "ENL0-dist (EfficientNet-Lite0 feature distance)", False, ENL0)
ENL1_DIST = MetricInfo("enl1-dist", "ENL1-dist (EfficientNet-Lite1 feature distance)", False, "efficientnet-lite1")
ENL2_DIST = MetricInfo("enl2-dist", "ENL2-dist (EfficientNet-Lite2 feature distance)", False, "efficientnet-lite2")
LPIPS_ALEX = MetricInfo("lpips-alex", "LPIPS (AlexNet)", False, ALEXNET)
LPIPS_VGG = MetricInfo("lpips-vgg", "LPIPS (VGG)", False, VGG16)
DISTS_INFO = MetricInfo("dists", "DISTS", False, VGG16)
FD_ENL0 = MetricInfo("fd-enl0", "FD-ENL0 (Fréchet distance, EfficientNet-Lite0, 256-px patches)", False, ENL0)
FID = MetricInfo("fid", "FID/256", False, INCEPTION)
KID = MetricInfo("kid", "KID/256", False, INCEPTION)
ALL_METRICS = (
    PSNR, MS_SSIM, SSIMULACRA2, BUTTERAUGLI, ENL0_DIST, ENL1_DIST, ENL2_DIST, FD_ENL0,
    LPIPS_ALEX, LPIPS_VGG, DISTS_INFO, FID, KID,
)  # fmt: skip
METRICS_BY_KEY = {m.key: m for m in ALL_METRICS}
# what runs without published weight files; ENL1-dist only on request (ENL2-dist is the independent distance)
OFFLINE_METRICS = ("psnr-rgb", "ms-ssim-rgb", "ssimulacra2", "butteraugli-3norm", "enl0-dist", "enl2-dist", "fd-enl0")
DEFAULT_METRICS = (*OFFLINE_METRICS, "lpips-alex", "lpips-vgg", "dists", "fid", "kid")


class ImageMetric:
    """A per-image metric; images are 3 x H x W uint8 tensors."""

    info: MetricInfo

    def prepare(self, reference: torch.Tensor) -> Any:
        """Whatever `measure` needs of the reference, computed once per image."""
        return reference

    def measure(self, prepared: Any, reconstruction: torch.Tensor) -> float:
        raise NotImplementedError


class PixelMetric(ImageMetric):
    def __init__(self, info: MetricInfo, function: Callable[[torch.Tensor, torch.Tensor], float]):
        self.info = info
        self.function = function

    def measure(self, prepared: Any, reconstruction: torch.Tensor) -> float:
        return self.function(prepared, reconstruction)


class DeepDistance(ImageMetric):
    """A distance module with `features(x)` and `distance_from_features(fx, fy)`; the reference's
    features are computed once per image."""

    def __init__(self, info: MetricInfo, module: nn.Module, unit_range: bool, device: str):
        self.info = info
        self.module = module.to(device)
        self.unit_range = unit_range  # DISTS takes [0, 1]; the others [-1, 1]
        self.device = device

    def _input(self, image: torch.Tensor) -> torch.Tensor:
        x = image.to(self.device, torch.float32).unsqueeze(0) / 255.0
        return x if self.unit_range else x * 2 - 1

    @torch.no_grad()
    def prepare(self, reference: torch.Tensor) -> Any:
        return self.module.features(self._input(reference))

    @torch.no_grad()
    def measure(self, prepared: Any, reconstruction: torch.Tensor) -> float:
        features = self.module.features(self._input(reconstruction))
        return float(self.module.distance_from_features(prepared, features)[0])


@dataclass
class DistributionMetric:
    info: MetricInfo
    extractor: str  # name of the patch feature extractor it reads
    compute: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]  # (real, fake) -> values by key


@dataclass
class MetricSuite:
    image_metrics: list[ImageMetric] = field(default_factory=list)
    extractors: dict[str, nn.Module] = field(default_factory=dict)  # uint8 patches -> N x D float64
    distribution_metrics: list[DistributionMetric] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # metric key -> why
    device: str = "cpu"
    versions: dict[str, str] = field(default_factory=dict)  # metric implementations outside Python packages

    @property
    def infos(self) -> list[MetricInfo]:
        return [m.info for m in self.image_metrics] + [m.info for m in self.distribution_metrics]

    @torch.no_grad()
    def patch_features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of the FID/256 patches of one image, per extractor (float32 on the CPU, to store)."""
        patches = fid_patches(image)
        if not self.extractors or patches.shape[0] == 0:
            return {name: torch.empty(0) for name in self.extractors}
        patches = patches.to(self.device)
        return {name: extractor(patches).float().cpu() for name, extractor in self.extractors.items()}


def _fd(real: torch.Tensor, fake: torch.Tensor, key: str) -> dict[str, float]:
    return {key: frechet_distance(real, fake)}


def _kid(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    mean, std = kernel_distance(real, fake)
    return {"kid": mean, "kid-std": std}


def build_suite(
    keys: list[str] | None = None, weights_dir: str | os.PathLike[str] | None = None, device: str = "cpu"
) -> MetricSuite:
    """Metrics by results key (DEFAULT_METRICS by default); published ones without weights, and Butteraugli
    without its tool, go to `skipped`."""
    keys = list(keys) if keys else list(DEFAULT_METRICS)
    unknown = [k for k in keys if k not in METRICS_BY_KEY]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r} (known: {', '.join(METRICS_BY_KEY)})")
    suite = MetricSuite(device=device)
    if PSNR.key in keys:
        suite.image_metrics.append(PixelMetric(PSNR, psnr))
    if MS_SSIM.key in keys:
        suite.image_metrics.append(PixelMetric(MS_SSIM, lambda a, b: float(ms_ssim(a, b))))
    _add_codec_metrics(suite, keys, device)
    if ENL0_DIST.key in keys or FD_ENL0.key in keys:
        from ..nn.efficientnet_lite import load_efficientnet_lite0
        from .perceptual import EfficientNetDistance, EfficientNetPooledFeatures

        backbone = load_efficientnet_lite0()
        if ENL0_DIST.key in keys:
            suite.image_metrics.append(DeepDistance(ENL0_DIST, EfficientNetDistance(backbone), False, device))
        if FD_ENL0.key in keys:
            suite.extractors["enl0"] = EfficientNetPooledFeatures(backbone).to(device)
            suite.distribution_metrics.append(DistributionMetric(FD_ENL0, "enl0", lambda r, f: _fd(r, f, "fd-enl0")))
    for info, variant in ((ENL1_DIST, 1), (ENL2_DIST, 2)):
        if info.key in keys:
            from .efficientnet_variants import load_efficientnet_lite
            from .perceptual import EfficientNetDistance

            module = EfficientNetDistance(load_efficientnet_lite(variant))
            suite.image_metrics.append(DeepDistance(info, module, False, device))
    _add_published(suite, keys, weights_dir, device)
    return suite


def _add_codec_metrics(suite: MetricSuite, keys: list[str], device: str) -> None:
    from .codec_metrics import ButteraugliMetric, Ssimulacra2Metric, ToolMissingError

    if SSIMULACRA2.key in keys:
        suite.image_metrics.append(Ssimulacra2Metric(SSIMULACRA2, device))
        suite.versions["ssimulacra2"] = "2.1, onestep's torch port of libjxl tools/ssimulacra2.cc"
    if BUTTERAUGLI.key in keys:
        try:
            metric = ButteraugliMetric(BUTTERAUGLI)
        except ToolMissingError as e:
            suite.skipped[BUTTERAUGLI.key] = str(e)
        else:
            suite.image_metrics.append(metric)
            suite.versions["butteraugli"] = metric.version


def _add_published(suite: MetricSuite, keys: list[str], weights_dir: Any, device: str) -> None:
    from .dists import DISTS
    from .inception import FIDInceptionV3
    from .lpips import LPIPS

    builders: list[tuple[MetricInfo, Callable[[], Any]]] = [
        (LPIPS_ALEX, lambda: DeepDistance(LPIPS_ALEX, LPIPS.from_published("alex", weights_dir), False, device)),
        (LPIPS_VGG, lambda: DeepDistance(LPIPS_VGG, LPIPS.from_published("vgg", weights_dir), False, device)),
        (DISTS_INFO, lambda: DeepDistance(DISTS_INFO, DISTS.from_published(weights_dir), True, device)),
    ]
    for info, build in builders:
        if info.key in keys:
            try:
                suite.image_metrics.append(build())
            except MissingWeightsError as e:
                suite.skipped[info.key] = str(e)
    wanted = [m for m in (FID, KID) if m.key in keys]
    if wanted:
        try:
            suite.extractors["inception"] = FIDInceptionV3.from_published(weights_dir).to(device)
        except MissingWeightsError as e:
            suite.skipped.update({m.key: str(e) for m in wanted})
            return
        if FID in wanted:
            suite.distribution_metrics.append(DistributionMetric(FID, "inception", lambda r, f: _fd(r, f, "fid")))
        if KID in wanted:
            suite.distribution_metrics.append(DistributionMetric(KID, "inception", _kid))
