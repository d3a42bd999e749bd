"""The ImageNet backbones of LPIPS and DISTS (AlexNet, VGG16 convolutional parts) in plain torch.

Layer indices equal torchvision's `features` indices, so the published torchvision weight files
(`features.<i>.weight`) load without renaming. ReLUs are not in-place: their outputs are tapped.
"""

from __future__ import annotations

import torch
from torch import nn

from ..modeling import load_state_dict_strict

VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG16_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
VGG16_CHANNELS = (64, 128, 256, 512, 512)
ALEXNET_TAPS = (1, 4, 7, 9, 11)  # relu1 .. relu5
ALEXNET_CHANNELS = (64, 192, 384, 256, 256)


def alexnet_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
    )


def vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU()]
            channels = int(item)
    return nn.Sequential(*layers)


def load_features(features: nn.Sequential, state: dict[str, torch.Tensor], source: str) -> None:
    """Load the `features.*` part of a torchvision classifier state dict (the classifier is unused)."""
    prefix = "features."
    own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    load_state_dict_strict(features, own, source=source)


def tapped_outputs(features: nn.Sequential, x: torch.Tensor, taps: tuple[int, ...]) -> list[torch.Tensor]:
    """Run layers up to the last tap and return the outputs of the tapped layers."""
    outputs = []
    for i, layer in enumerate(features[: taps[-1] + 1]):
        x = layer(x)
        if i in taps:
            outputs.append(x)
    return outputs
