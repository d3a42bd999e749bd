"""LatentHyperpriorCodec (the default model's codec): the shared codec contract at small widths."""

from __future__ import annotations

import pytest
from codec_testing import LatentCodecContract

from onestep.codecs.latent_hyperprior import LatentHyperpriorCodec
from onestep.errors import ConfigError


class TestLatentHyperpriorContract(LatentCodecContract):
    sizes = ((64, 64), (128, 192))
    latent_channels = 8

    def make_codec(self) -> LatentHyperpriorCodec:
        return LatentHyperpriorCodec(
            latent_channels=8,
            channels=32,
            y_channels=16,
            hyper_channels=32,
            hyper_encoder_channels=(64, 64),
            feature_channels=24,
        )

    def expected_features_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch, 24, height // 8, width // 8)


def test_y_channels_must_split_into_four_groups() -> None:
    with pytest.raises(ConfigError):
        LatentHyperpriorCodec(y_channels=30)
