"""SODEC's compression module on pixels (digest ../shared/reference/osdiff-sodec.md §2.2), as a hyperprior
composition:

    y = E(x)                    220 @ /16             z = H_a(y)    320 @ /64
    z: factorized prior         y: mean-scale Gaussian, mu = H_mu(z_hat), sigma = H_sigma(z_hat), no context
    w = H_s(z_hat)              the "global information" (@ /16)
    features = T_s(y_hat, w)    the SD latent (4 @ /8), which the UNet reads as x_t at t = 999

The entropy model P is HiFiC's (separate mean and scale synthesis nets); H_s is a third network from z_hat,
so that freezing E, H_a and P (stage 2 of the rate annealing) freezes the rate while H_s still trains.
The codec output carries y_hat in `extras` for the fidelity guidance module (`guidance.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...codecs.base import CodecOutput
from ...codecs.hyperprior_codec import HyperpriorCodec
from ...entropy.base import ContextPrior
from ...entropy.factorized import FactorizedPrior
from ...entropy.gaussian import GaussianConditional
from ...errors import ConfigError
from .networks import HiFiCEncoder, HyperAnalysis, HyperSynthesis, TransformationModule

Y_HAT = "y_hat"  # the key of y_hat in the codec output's extras

# The names of the compression module's parts, as parameter-name prefixes of the codec: E, H_a and P.
COMPRESSION_PARTS = ("encoder", "hyper_analysis", "z_model", "mean_synthesis", "scale_synthesis")


class MeanScalePrior(ContextPrior):
    """A Gaussian prior of y whose `feature` is [means ++ scales] (2C channels at y's size) computed from
    z_hat alone: Ballé/Minnen's mean-scale hyperprior without an autoregressive context. No parameters."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gaussian = GaussianConditional()

    def _params(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        means, scales = self.feature(params).float().chunk(2, dim=1)
        return {"means": means, "scales": scales}

    def estimate(self, x: torch.Tensor, **params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gaussian.estimate(x, **self._params(params))

    @torch.no_grad()
    def compress(self, x: torch.Tensor, **params: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        return self.gaussian.compress(x, **self._params(params))

    @torch.no_grad()
    def decompress(self, data: bytes, shape: Sequence[int], **params: torch.Tensor) -> torch.Tensor:
        return self.gaussian.decompress(data, shape, **self._params(params))

    @torch.no_grad()
    def predict(self, feature: torch.Tensor) -> torch.Tensor:
        return feature.float().chunk(2, dim=1)[0]


class SODECCodec(HyperpriorCodec):
    """HiFiC's compression module + T_s. Streams: "z" (factorized prior) and "y" (mean-scale Gaussian)."""

    modes = ("normal",)

    def __init__(
        self,
        encoder_widths: Sequence[int] = (60, 120, 240, 480, 960),
        y_channels: int = 220,
        z_channels: int = 320,
        w_channels: int = 220,
        transform_width: int = 256,
        latent_channels: int = 4,
    ) -> None:
        super().__init__()
        if len(encoder_widths) != 5:
            raise ConfigError(f"encoder_widths must give 5 widths (y at /16), got {list(encoder_widths)}")
        self.encoder = HiFiCEncoder(encoder_widths, y_channels)
        self.hyper_analysis = HyperAnalysis(y_channels, z_channels)
        self.z_model = FactorizedPrior(z_channels)
        self.mean_synthesis = HyperSynthesis(z_channels, y_channels)
        self.scale_synthesis = HyperSynthesis(z_channels, y_channels)
        self.prior = MeanScalePrior(y_channels)
        self.side_synthesis = HyperSynthesis(z_channels, w_channels)  # H_s -> w
        self.transform = TransformationModule(y_channels, w_channels, transform_width, latent_channels)
        self.y_channels = y_channels
        self.pad_multiple = 64  # one z position

    @classmethod
    def tiny(cls, **overrides: object) -> SODECCodec:
        config: dict[str, object] = dict(
            encoder_widths=(8, 8, 16, 16, 32), y_channels=16, z_channels=16, w_channels=16, transform_width=32
        )
        return cls(**{**config, **overrides})  # type: ignore[arg-type]

    def analyse(self, image: torch.Tensor | None, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image is None:
            raise ConfigError("SODEC codes pixels: it cannot train on precomputed latents")
        y = self.encoder(image)
        return y, self.hyper_analysis(y)

    def entropy_feature(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = torch.cat([self.mean_synthesis(z_hat), self.scale_synthesis(z_hat)], dim=1)
        return feature, self.side_synthesis(z_hat)

    def synthesize(self, y_hat: torch.Tensor, side: torch.Tensor) -> CodecOutput:
        return CodecOutput(features=self.transform(y_hat, side), extras={Y_HAT: y_hat})

    def compression_parameters(self) -> list[torch.nn.Parameter]:
        """E, H_a and P: what stage 2 freezes."""
        return [p for name in COMPRESSION_PARTS for p in getattr(self, name).parameters()]

    def aux_loss(self) -> torch.Tensor:
        """The factorized prior's quantile loss (trained on `quantiles` only)."""
        return self.z_model.aux_loss()
