"""A compact hyperprior codec that works on the autoencoder's latent alone (the default model's codec).

    latent (@ /d) -> analysis -> y (@ /2d) -> hyper_encoder -> z (@ /8d) -> FSQ indices
    z_hat -> hyper_decoder -> entropy feature (@ /2d) -> 4-pass prior -> y_hat
    y_hat, entropy feature -> synthesis -> features (@ /d) for the one-step generator

Built from the same parts as the SD-based one-step codec (hyper-encoder/decoder, FSQ, 4-pass prior), without the pixel
branch, the semantic tokens and the big UNet encoder, so that it trains and decodes quickly on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from ..entropy.fsq import FSQ
from ..errors import ConfigError
from ..nn.depth_conv import DepthConvBlock
from ..nn.upsample import ResidualBlockUpsample
from .base import CodecOutput
from .fsq_hyperprior import FSQHyperpriorCodec
from .hyperprior import HyperDecoder, HyperEncoder
from .spatial_prior import FourPassPrior


class LatentHyperpriorCodec(FSQHyperpriorCodec):
    """Constructor arguments are the config. `latent_downsampling` is the autoencoder's factor (8 for TAEF2),
    so z sits at 8 x that (64 pixels per z position)."""

    def __init__(
        self,
        latent_channels: int = 32,
        latent_downsampling: int = 8,
        channels: int = 128,
        y_channels: int = 64,
        hyper_channels: int = 96,
        hyper_encoder_channels: tuple[int, int] = (128, 128),
        fsq_levels: tuple[int, ...] = (4,) * 7,
        feature_channels: int = 128,
    ) -> None:
        super().__init__()
        if y_channels % 4:
            raise ConfigError(f"y_channels must be divisible by 4 (the prior's channel groups), got {y_channels}")
        self.pad_multiple = latent_downsampling * 8
        self.analysis = nn.Sequential(
            nn.Conv2d(latent_channels, channels, 3, padding=1),
            DepthConvBlock(channels),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            DepthConvBlock(channels),
            DepthConvBlock(channels, y_channels),
        )
        self.hyper_encoder = HyperEncoder(y_channels, 0, tuple(hyper_encoder_channels), len(fsq_levels), 2)
        self.fsq = FSQ(list(fsq_levels))
        self.hyper_decoder = HyperDecoder(len(fsq_levels), hyper_channels, 2)
        self.prior = FourPassPrior(y_channels, hyper_channels)
        self.synthesis = nn.Sequential(
            DepthConvBlock(y_channels + hyper_channels, channels),
            DepthConvBlock(channels),
            ResidualBlockUpsample(channels, feature_channels),
            DepthConvBlock(feature_channels),
        )

    def analyse(self, image: torch.Tensor | None, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.analysis(latent)
        return y, self.hyper_encoder(y)

    def entropy_feature(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature, _ = self.hyper_decoder(z_hat)
        return feature, feature

    def synthesize(self, y_hat: torch.Tensor, side: torch.Tensor) -> CodecOutput:
        # the hyper feature carries z's information too (all there is in the z-only mode)
        features = self.synthesis(torch.cat((y_hat, side), dim=1))
        return CodecOutput(features, None, extras={"y_hat": y_hat})
