"""Shared pieces of the training tests (this module holds no tests itself).

`LatentToyCodec` is a small but real trainable latent codec that reads only the latent (so it also serves
latent-space training): a conv analysis, uniform-noise / straight-through quantisation, a learned
zero-mean Gaussian rate model, a conv synthesis, and a coarse `y_semantic` map at /64 of the image that
also serves as cross-attention context tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from conftest import SHARED, one_thread  # noqa: F401 - re-exported for the modules that import them here
from PIL import Image
from torch import nn

from onestep.autoencoders.space_to_depth import SpaceToDepth  # noqa: F401 - registers the class
from onestep.codecs.base import CodecOutput, LatentCodec
from onestep.generators.conv import ConvGenerator  # noqa: F401 - registers the class
from onestep.train.config import merge, task_defaults

REPO = Path(__file__).resolve().parents[1]
FACTOR = 8  # SpaceToDepth factor of the tiny pipelines
LATENT_CHANNELS = 3 * FACTOR**2


class LatentToyCodec(LatentCodec):
    pad_multiple = 64

    def __init__(
        self, latent_channels: int = LATENT_CHANNELS, channels: int = 8, features: int = 32, semantic_dim: int = 32
    ) -> None:
        super().__init__()
        self.analysis = nn.Conv2d(latent_channels, channels, 3, padding=1)
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.synthesis = nn.Conv2d(channels, features, 3, padding=1)
        self.semantic = nn.Conv2d(channels, semantic_dim, 1)

    def forward(self, image: torch.Tensor | None, latent: torch.Tensor) -> CodecOutput:
        y = self.analysis(latent) * 4
        if self.training:
            noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
            y_hat = y + (y.round() - y).detach()
        else:
            noisy = y_hat = y.round()
        normal = torch.distributions.Normal(0.0, self.log_scale.exp().view(1, -1, 1, 1))
        p = (normal.cdf(noisy + 0.5) - normal.cdf(noisy - 0.5)).clamp_min(1e-9)
        bits = -torch.log2(p).sum(dim=(1, 2, 3))
        semantic = self.semantic(nn.functional.avg_pool2d(y_hat, FACTOR))
        tokens = semantic.flatten(2).transpose(1, 2)  # cross-attention context, as OneDC's y_semantic
        return CodecOutput(self.synthesis(y_hat / 4), tokens, bits={"y": bits}, extras={"y_semantic": semantic})


def tiny_model_config(semantic_dim: int = 32) -> dict[str, Any]:
    """A nested `model_from_config` dict: SpaceToDepth(8) + LatentToyCodec + ConvGenerator."""
    return {
        "_class": "OneStepPipeline",
        "autoencoder": {"_class": "SpaceToDepth", "factor": FACTOR},
        "codec": {"_class": "LatentToyCodec", "semantic_dim": semantic_dim},
        "generator": {"_class": "ConvGenerator", "in_channels": 32, "out_channels": LATENT_CHANNELS, "width": 32},
        "name": "tiny-train",
    }


def save_tiny_teacher(folder: Path, channels: int = LATENT_CHANNELS, seed: int = 0) -> Path:
    """A tiny random diffusers UNet2DConditionModel on a `channels`-wide latent, as a stage-II teacher."""
    from diffusers import UNet2DConditionModel

    from onestep.generators.unet import TINY_UNET

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**{**TINY_UNET, "in_channels": channels, "out_channels": channels})
    unet.save_pretrained(folder)
    return folder


def write_images(folder: Path, count: int, size: tuple[int, int] = (96, 80), seed: int = 0) -> Path:
    """Smooth random RGB images (plus one greyscale) so that codecs have something learnable."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
        if i == 0:
            image = image.convert("L")
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        image.save(sub / f"img{i}.{'png' if i % 3 else 'jpg'}")
    return folder


def tiny_config(tmp_path: Path, source: Path, **sections: Any) -> dict[str, Any]:
    """A complete config (pixel space; stage 1 unless `task` says otherwise) for a few CPU steps; `sections`
    update it."""
    config = task_defaults(sections.pop("task", "stage1"), (sections.get("model") or {}).get("method"))
    merge(
        config,
        {
            "output_dir": str(tmp_path / "run"),
            "model": {"config": tiny_model_config()},
            "data": {"train": [str(source)], "crop": 128, "size": 64, "batch_size": 4},
            "optim": {"lr": 1e-3, "warmup": 2},
            "train": {"steps": 3, "log_every": 1, "checkpoint_every": 100, "progress": False},
            "loss": {"perceptual": 0.0, "rate": {"end": 0.01, "warmup_steps": 2}},
        },
    )
    for key, value in sections.items():
        merge(config, {key: value})
    return config


def build_tiny_pipeline(semantic_dim: int = 32) -> Any:
    """`model.factory` target for configs run in a fresh process (e.g. under `accelerate launch`)."""
    from onestep.modeling import model_from_config

    return model_from_config(tiny_model_config(semantic_dim))
