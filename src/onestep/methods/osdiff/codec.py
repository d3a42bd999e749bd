"""OSDiff's latent codec (the reference's `LFGCM`, digest §1.2-1.4) as a hyperprior composition:

    y = G_a(latent)                  320 x /16          z = h_a(y)   192 x /64
    z: factorized prior (CompressAI `EntropyBottleneck` names)  ->  h_s(z_hat): 640 x /16
    y: checkerboard + 10-slice channel context Gaussian prior given h_s(z_hat)
    c_latent = G_s(y_hat)            4 x /8

The generator's input is [y_T ++ c_latent]: y_T ~ N(0, I) at the latent's size, drawn on the CPU from a seed
the stream records (section "seed", 4 bytes big-endian), so a file decodes to the same pixels anywhere. In
training, y_T is fresh noise (`noise_input="noise"`, as at inference) or, as the reference trains, the
ground-truth latent noised to t = 999 (`"noised-latent"`: sqrt(abar) latent + sqrt(1 - abar) noise).

Images are padded to multiples of 64 by replication (the reference zero-pads) and cropped back exactly;
bpp is the file's size over the original pixels (the reference divides by the padded size).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import torch

from ...codecs.base import CodecOutput
from ...codecs.checkerboard_prior import OSDIFF_CONTEXT_WIDTHS, OSDIFF_SLICES, CheckerboardChannelPrior
from ...codecs.hyperprior_codec import HyperpriorCodec, Symbols
from ...entropy.factorized import FactorizedPrior
from ...errors import ConfigError, StreamError
from .sd21 import ldm_alpha_bar
from .transforms import Analysis, HyperAnalysis, HyperSynthesis, Synthesis

SEED_SECTION = "seed"
DEFAULT_SEED = 231  # the reference's `inference.py --seed` default
NOISE_INPUTS = ("noise", "noised-latent")


def latent_noise(seed: int, shape: Sequence[int], device: torch.device | str) -> torch.Tensor:
    """y_T for a stream: drawn by a CPU generator (the same numbers on every device), then moved."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32).to(device)


class OSDiffCodec(HyperpriorCodec):
    """`latent_channels` in and out (the SD latent, /8); y has `m` channels at /16, z `n` at /64."""

    modes = ("normal",)

    def __init__(
        self,
        latent_channels: int = 4,
        mid_channels: int = 64,
        n: int = 192,
        m: int = 320,
        slices: Sequence[int] = OSDIFF_SLICES,
        context_widths: Sequence[int] = OSDIFF_CONTEXT_WIDTHS,
        seed: int = DEFAULT_SEED,
        noise_input: str = "noise",
    ) -> None:
        super().__init__()
        if sum(slices) != m:
            raise ConfigError(f"the slices {list(slices)} must add up to m = {m}")
        if noise_input not in NOISE_INPUTS:
            raise ConfigError(f"noise_input must be one of {', '.join(NOISE_INPUTS)}, not {noise_input!r}")
        if not 0 <= seed < 2**32:
            raise ConfigError(f"seed must fit in 32 bits, got {seed}")
        self.analysis = Analysis(latent_channels, mid_channels, m)
        self.hyper_analysis = HyperAnalysis(n, m)
        self.hyper_synthesis = HyperSynthesis(n, m)
        self.synthesis = Synthesis(n, m, latent_channels)
        self.z_model = FactorizedPrior(n)
        self.prior = CheckerboardChannelPrior(2 * m, slices, context_widths)
        self.latent_channels = latent_channels
        self.seed = seed
        self.noise_input = noise_input
        self.pad_multiple = 64  # one z position: /8 in the SD autoencoder, /8 in the codec
        self.abar = ldm_alpha_bar(999)

    @classmethod
    def tiny(cls, **overrides: object) -> OSDiffCodec:
        config: dict[str, object] = dict(mid_channels=16, n=16, m=24, slices=(4, 4, 8, 8), context_widths=(16, 16))
        return cls(**{**config, **overrides})  # type: ignore[arg-type]

    # --- the parts HyperpriorCodec composes ----------------------------------------------------------

    def analyse(self, image: torch.Tensor | None, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.analysis(latent)
        return y, self.hyper_analysis(y)

    def entropy_feature(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.hyper_synthesis(z_hat)
        return feature, feature

    def synthesize(self, y_hat: torch.Tensor, side: torch.Tensor) -> CodecOutput:
        return CodecOutput(features=self.synthesis(y_hat))

    # --- y_T in front of c_latent --------------------------------------------------------------------

    @staticmethod
    def _with_noise(out: CodecOutput, noise: torch.Tensor) -> CodecOutput:
        out.extras["c_latent"] = out.features
        out.features = torch.cat([noise.to(out.features.dtype), out.features], dim=1)
        return out

    def forward(self, image: torch.Tensor | None, latent: torch.Tensor) -> CodecOutput:
        out = super().forward(image, latent)
        noise = torch.randn_like(latent)
        if self.noise_input == "noised-latent":
            noise = math.sqrt(self.abar) * latent + math.sqrt(1 - self.abar) * noise
        return self._with_noise(out, noise)

    @torch.no_grad()
    def compress(
        self, image: torch.Tensor | None, latent: torch.Tensor, mode: str = "normal", quality: int | None = None
    ) -> dict[str, bytes]:
        return self.write_sections(image, latent, mode, quality)[0]

    @torch.no_grad()
    def write_sections(
        self, image: torch.Tensor | None, latent: torch.Tensor, mode: str = "normal", quality: int | None = None
    ) -> tuple[dict[str, bytes], Symbols]:
        self._check_quality(quality)
        sections, symbols = super().write_sections(image, latent, mode)
        sections[SEED_SECTION] = struct.pack(">I", self.seed)
        symbols.extras[SEED_SECTION] = self.seed
        return sections, symbols

    @torch.no_grad()
    def read_sections(self, sections: dict[str, bytes], padded_size: tuple[int, int], mode: str = "normal") -> Symbols:
        sections = dict(sections)
        seed = sections.pop(SEED_SECTION, None)
        if seed is None or len(seed) != 4:
            raise StreamError("OSDiff stream has no 4-byte seed section")
        symbols = super().read_sections(sections, padded_size, mode)
        symbols.extras[SEED_SECTION] = struct.unpack(">I", seed)[0]
        return symbols

    @torch.no_grad()
    def finish(self, decoded: Symbols) -> CodecOutput:
        out = super().finish(decoded)
        latent_shape = (1, self.latent_channels, *out.features.shape[-2:])
        return self._with_noise(out, latent_noise(decoded.extras[SEED_SECTION], latent_shape, out.features.device))

    def _check_quality(self, quality: int | None) -> None:
        if quality is not None:
            raise ConfigError("OSDiff has no rate control: one model per rate point")

    def aux_loss(self) -> torch.Tensor:
        """CompressAI's quantile loss of the factorized prior (its own optimizer, on `quantiles` only)."""
        return self.z_model.aux_loss()
