"""DISTS (Ding et al. 2020): structure and texture similarity on VGG16 features.

VGG16's max-pools are replaced by L2 pooling (a 3x3 Hann window, stride 2, on squared features).
Inputs in [0, 1] are ImageNet-normalised; the compared feature sets are the raw input and the
relu1_2 .. relu5_3 outputs (3 + 64 + 128 + 256 + 512 + 512 = 1475 channels). Per channel, a texture
term compares global means and a structure term global (co)variances; learned alpha and beta
weight them. Needs torchvision's VGG16 file and DISTS' alpha/beta file (`weights.py`).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .backbones import VGG16_CHANNELS, VGG16_TAPS, load_features, tapped_outputs, vgg16_features
from .weights import find_weights, load_state

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CHANNELS = (3, *VGG16_CHANNELS)
C1 = C2 = 1e-6


class L2Pool(nn.Module):
    """sqrt(blur(x^2)) with stride 2; the Hann window has no weights to load."""

    def __init__(self, channels: int):
        super().__init__()
        hann = torch.tensor([0.5, 1.0, 0.5])
        window = hann[:, None] * hann[None, :]
        self.register_buffer("window", (window / window.sum()).expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.conv2d(x.square(), self.window, stride=2, padding=1, groups=x.shape[1])
        return (pooled + 1e-12).sqrt()


class DISTS(nn.Module):
    """DISTS distance: images in [0, 1], B x 3 x H x W each -> (B,); 0 for identical images."""

    def __init__(self):
        super().__init__()
        self.backbone = vgg16_features()
        for i, layer in enumerate(self.backbone):
            if isinstance(layer, nn.MaxPool2d):
                self.backbone[i] = L2Pool(self.backbone[i - 2].out_channels)
        total = sum(CHANNELS)
        self.alpha = nn.Parameter(torch.full((1, total, 1, 1), 0.1))
        self.beta = nn.Parameter(torch.full((1, total, 1, 1), 0.1))
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_published(cls, weights_dir: str | os.PathLike[str] | None = None) -> DISTS:
        model = cls()
        vgg_path, dists_path = find_weights("vgg16", "dists", extra=weights_dir)
        load_features(model.backbone, load_state(vgg_path), source=str(vgg_path))
        model.load_alpha_beta(load_state(dists_path), source=str(dists_path))
        return model.requires_grad_(False).eval()

    def load_alpha_beta(self, state: dict[str, torch.Tensor], source: str) -> None:
        for name in ("alpha", "beta"):
            value = state.get(name)
            target = getattr(self, name)
            if value is None or value.shape != target.shape:
                raise ModelError(f"{source} has no {name} of shape {tuple(target.shape)}")
            target.data.copy_(value)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x, *tapped_outputs(self.backbone, (x - self.mean) / self.std, VGG16_TAPS)]

    def distance_from_features(self, fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
        total = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / total, CHANNELS, dim=1)
        betas = torch.split(self.beta / total, CHANNELS, dim=1)
        similarity = 0.0
        for a, b, alpha, beta in zip(fx, fy, alphas, betas):
            mean_a, mean_b = a.mean(dim=(2, 3), keepdim=True), b.mean(dim=(2, 3), keepdim=True)
            texture = (2 * mean_a * mean_b + C1) / (mean_a.square() + mean_b.square() + C1)
            var_a = (a - mean_a).square().mean(dim=(2, 3), keepdim=True)
            var_b = (b - mean_b).square().mean(dim=(2, 3), keepdim=True)
            cov = (a * b).mean(dim=(2, 3), keepdim=True) - mean_a * mean_b
            structure = (2 * cov + C2) / (var_a + var_b + C2)
            similarity = similarity + (alpha * texture + beta * structure).sum(dim=(1, 2, 3))
        return 1 - similarity

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance_from_features(self.features(x), self.features(y))
