"""LPIPS (Zhang et al. 2018, v0.1) with AlexNet or VGG16 backbones and the official linear heads.

Inputs in [-1, 1] are shifted and scaled by the LPIPS scaling layer, run through the backbone;
at five ReLU outputs the features are unit-normalised along channels, the squared difference
is weighted per channel by the linear head (a 1x1 convolution, no bias), averaged over space and
summed over layers. Needs torchvision's backbone file and the LPIPS head file (`weights.py`).
"""

from __future__ import annotations

import os
import re

import torch
from torch import nn

from ..modeling import load_state_dict_strict
from .backbones import (
    ALEXNET_CHANNELS,
    ALEXNET_TAPS,
    VGG16_CHANNELS,
    VGG16_TAPS,
    alexnet_features,
    load_features,
    tapped_outputs,
    vgg16_features,
)
from .perceptual import unit_normalize
from .weights import find_weights, load_state

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
BACKBONES = {
    "alex": (alexnet_features, ALEXNET_TAPS, ALEXNET_CHANNELS, "alexnet"),
    "vgg": (vgg16_features, VGG16_TAPS, VGG16_CHANNELS, "vgg16"),
}


class LPIPS(nn.Module):
    """LPIPS distance: images in [-1, 1], B x 3 x H x W each -> (B,)."""

    def __init__(self, backbone: str = "alex"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown LPIPS backbone {backbone!r} (known: {', '.join(BACKBONES)})")
        build, self.taps, channels, _ = BACKBONES[backbone]
        self.backbone = build()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_published(cls, backbone: str = "alex", weights_dir: str | os.PathLike[str] | None = None) -> LPIPS:
        """Load torchvision's backbone and the official LPIPS v0.1 heads; MissingWeightsError if absent."""
        model = cls(backbone)
        backbone_path, heads_path = find_weights(BACKBONES[backbone][3], f"lpips-{backbone}", extra=weights_dir)
        load_features(model.backbone, load_state(backbone_path), source=str(backbone_path))
        model.load_heads(load_state(heads_path), source=str(heads_path))
        return model.requires_grad_(False).eval()

    def load_heads(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Heads are stored as `lin<i>.model.1.weight` (a Dropout then a 1x1 conv in the original)."""
        renamed = {}
        for key, value in state.items():
            match = re.fullmatch(r"lin(\d+)\.model\.1\.weight", key)
            renamed[f"{match.group(1)}.weight" if match else key] = value
        load_state_dict_strict(self.heads, renamed, source=source)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised tapped features of images in [-1, 1]."""
        outputs = tapped_outputs(self.backbone, (x - self.shift) / self.scale, self.taps)
        return [unit_normalize(f) for f in outputs]

    def distance_from_features(self, fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
        per_layer = [head((a - b).square()).mean(dim=(1, 2, 3)) for head, a, b in zip(self.heads, fx, fy)]
        return torch.stack(per_layer, dim=0).sum(dim=0)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance_from_features(self.features(x), self.features(y))
