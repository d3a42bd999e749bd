"""The plugin method's composition and its own generator class."""

from __future__ import annotations

import torch
from torch import nn

from onestep.autoencoders.space_to_depth import SpaceToDepth
from onestep.codecs.latent_hyperprior import LatentHyperpriorCodec
from onestep.generators.base import Generator
from onestep.methods.pipeline import OneStepPipeline

FACTOR = 4


class PluginGatedGenerator(Generator):
    """features -> latent through a 3x3 conv whose output is gated by a sigmoid of a 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.value = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.gate = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, features: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.value(features) * torch.sigmoid(self.gate(features))


def tiny(seed: int = 0, name: str = "plugin-example") -> OneStepPipeline:
    torch.manual_seed(seed)
    autoencoder = SpaceToDepth(FACTOR)
    codec = LatentHyperpriorCodec(
        latent_channels=autoencoder.latent_channels,
        latent_downsampling=FACTOR,
        channels=32,
        y_channels=8,
        hyper_channels=32,
        hyper_encoder_channels=(32, 32),
        feature_channels=32,
    )
    generator = PluginGatedGenerator(32, autoencoder.latent_channels)
    return OneStepPipeline(autoencoder, codec, generator, name=name).eval()
