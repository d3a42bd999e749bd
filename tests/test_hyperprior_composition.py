"""A hyperprior codec composed from parts alone: OSDiff's pairing (factorized prior for z, checkerboard +
channel-slice prior for y) in a tiny `HyperpriorCodec` defined here, through the shared codec contract."""

from __future__ import annotations

import pytest
import torch
from codec_testing import LatentCodecContract
from torch import nn

from onestep.codecs.base import CodecOutput
from onestep.codecs.checkerboard_prior import CheckerboardChannelPrior
from onestep.codecs.hyperprior_codec import HyperpriorCodec
from onestep.entropy import FactorizedPrior
from onestep.errors import ConfigError


class FactorizedCheckerboardCodec(HyperpriorCodec):
    """latent (@ /8) -> y (@ /16) -> z (@ /64) -> factorized prior; z_hat -> feature (@ /16) -> checkerboard
    prior -> y_hat -> features (@ /8)."""

    def __init__(self, latent_channels: int = 4, slices: tuple[int, ...] = (2, 2, 4), z_channels: int = 4) -> None:
        super().__init__()
        y_channels, width = sum(slices), 16
        self.pad_multiple = 64
        self.analysis = nn.Conv2d(latent_channels, y_channels, 3, stride=2, padding=1)
        self.hyper_encoder = nn.Sequential(
            nn.Conv2d(y_channels, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, z_channels, 3, stride=2, padding=1),
        )
        self.z_model = FactorizedPrior(z_channels)
        self.hyper_decoder = nn.Sequential(
            nn.ConvTranspose2d(z_channels, width, 4, stride=2, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(width, 2 * y_channels, 4, stride=2, padding=1),
        )
        self.prior = CheckerboardChannelPrior(2 * y_channels, slices, context_widths=(8, 8))
        self.synthesis = nn.ConvTranspose2d(y_channels, 8, 4, stride=2, padding=1)

    def analyse(self, image: torch.Tensor | None, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.analysis(latent)
        return y, self.hyper_encoder(y)

    def entropy_feature(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.hyper_decoder(z_hat)
        return feature, feature

    def synthesize(self, y_hat: torch.Tensor, side: torch.Tensor) -> CodecOutput:
        return CodecOutput(self.synthesis(y_hat), None, extras={"y_hat": y_hat})


class TestFactorizedCheckerboardCodec(LatentCodecContract):
    sizes = ((64, 64), (128, 192))

    def make_codec(self) -> FactorizedCheckerboardCodec:
        return FactorizedCheckerboardCodec()

    def expected_features_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch, 8, height // 8, width // 8)


def test_estimated_bits_are_the_parts_and_match_the_streams() -> None:
    torch.manual_seed(0)
    codec = FactorizedCheckerboardCodec().eval()
    latent = torch.randn(1, 4, 64, 64)  # a 512 x 512 image: 64 z positions, 2048 y positions
    with torch.no_grad():
        out = codec(None, latent)
        y, z = codec.analyse(None, latent)
        _, z_bits = codec.z_model.estimate(z)
    assert torch.equal(out.bits["z"], z_bits)
    sections = codec.compress(None, latent)
    for name in ("y", "z"):
        real, estimated = 8 * len(sections[name]), float(out.bits[name])
        assert abs(real - estimated) <= 0.03 * real, f"{name}: estimated {estimated:.0f} bits, real {real}"
    assert codec.z_model.aux_loss().requires_grad
    with pytest.raises(ConfigError):
        codec.compress(None, latent, quality=1)  # no rate control
