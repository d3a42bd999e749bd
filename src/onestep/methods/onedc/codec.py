"""OneDC's latent codec (digest §1-5): y with a hyperprior z (FSQ, fixed-length indices) and the 4-pass
spatial prior; the decoder side turns (y_hat, z) into the generator's 320-channel input and the
cross-attention tokens.

    image, latent -> encoder -> y (/16), semantic map (/64) -> hyper_encoder -> z (/64) -> FSQ indices
    z_hat -> hyper_decoder -> entropy feature (/16) -> prior -> y_hat;   z_semantic -> semantic -> tokens
    y_hat, semantic map -> decoder -> features (/8)

Training, streams and modes come from `FSQHyperpriorCodec`: "normal" sends z and y; "z-only" (the
reference's extreme-low-rate variant, §5.12) sends z only, and y_hat is the prior's predicted means;
"reference-rans" is "normal" with y coded by the reference's own coder (`reference_coder.py`): the y
stream of its `.bin` files (`bin_format.py`).
The entropy-parameter path (hyper_decoder and prior) runs in float32 outside autocast so that streams
decode bit-exactly.
"""

from __future__ import annotations

import torch

from ...codecs.base import CodecOutput
from ...codecs.fsq_hyperprior import SECTIONS, FSQHyperpriorCodec, section_bits
from ...codecs.hyperprior import HyperDecoder, HyperEncoder
from ...codecs.hyperprior_codec import Symbols
from ...codecs.spatial_prior import FourPassPrior
from ...entropy.fsq import FSQ
from ...errors import ConfigError
from .decoder import OneDCDecoder
from .encoder import PATCH_SIZE, UNET_LEVELS, OneDCEncoder
from .reference_coder import with_reference_coder
from .semantic import SemanticAdaptor, to_tokens

REFERENCE_MODE = "reference-rans"


def as_reference_layout(z_hat: torch.Tensor) -> torch.Tensor:
    """The reference's FSQ returns z_hat channels-last (einops' rearrange), so its whole entropy path runs on
    channels-last tensors, whose CPU kernels round differently: on the same layout ours give its entropy
    parameters bit for bit (at 768x512 the contiguous layout differs by 5e-7 and its streams do not decode)."""
    return z_hat.contiguous(memory_format=torch.channels_last)


class OneDCCodec(FSQHyperpriorCodec):
    """Constructor arguments are the config; `full()` is the reference structure (394,147,783 parameters),
    `tiny()` a small one for tests."""

    pad_multiple = PATCH_SIZE * 2**UNET_LEVELS
    modes = (*SECTIONS, REFERENCE_MODE)

    def __init__(
        self,
        latent_channels: int = 4,
        patch_channels: int = 192,
        fused_channels: int = 320,
        unet_channels: tuple[int, ...] = (512, 768, 768),
        attention_head_dim: int = 8,
        unet_time_dim: int | None = None,
        unet_norm_groups: int = 32,
        encoder_channels: int = 512,
        y_channels: int = 128,
        hyper_encoder_channels: tuple[int, int] = (768, 512),
        hyper_channels: int = 128,
        fsq_levels: tuple[int, ...] = (4,) * 7,
        semantic_dim: int = 768,
        decoder_channels: tuple[int, int] = (512, 256),
        output_channels: int = 320,
        encoder_timestep: int = 999,
    ) -> None:
        super().__init__()
        if y_channels % 4:
            raise ConfigError(f"y_channels must be divisible by 4 (the prior's channel groups), got {y_channels}")
        downsamplings = UNET_LEVELS - 1  # y (/16) to z (/64)
        self.encoder = OneDCEncoder(
            latent_channels,
            patch_channels,
            fused_channels,
            tuple(unet_channels),
            attention_head_dim,
            unet_time_dim,
            unet_norm_groups,
            encoder_channels,
            y_channels,
            encoder_timestep,
        )
        self.hyper_encoder = HyperEncoder(
            y_channels, unet_channels[-1], tuple(hyper_encoder_channels), len(fsq_levels), downsamplings
        )
        self.fsq = FSQ(list(fsq_levels))
        self.hyper_decoder = HyperDecoder(len(fsq_levels), hyper_channels, downsamplings)
        self.prior = FourPassPrior(y_channels, hyper_channels)
        self.semantic = SemanticAdaptor(hyper_channels, semantic_dim)
        self.decoder = OneDCDecoder(y_channels, tuple(decoder_channels), semantic_dim, output_channels)

    @classmethod
    def full(cls) -> OneDCCodec:
        """The reference codec (`IntraNoAR` with the inference config)."""
        return cls()

    @classmethod
    def tiny(cls) -> OneDCCodec:
        """Same structure, small widths, for tests. GroupNorm needs at least 2 values per group on the 1x1
        maps of a 64x64 image: 64 channels for the /64 blocks with 32 groups, 16 groups in the UNet."""
        return cls(
            patch_channels=16,
            fused_channels=32,
            unet_channels=(32, 32, 32),
            unet_time_dim=32,
            unet_norm_groups=16,
            encoder_channels=32,
            y_channels=16,
            hyper_encoder_channels=(64, 64),
            hyper_channels=16,
            semantic_dim=64,
            decoder_channels=(32, 32),
            output_channels=32,
        )

    def sender_only_prefixes(self) -> tuple[str, ...]:
        """The analysis side (`analyse`): the receiver starts from z_hat and y_hat."""
        return ("encoder.", "hyper_encoder.")

    def pad_mode(self, mode: str) -> str:
        """The reference pads with `replicate` in normal mode and with `reflect` in its z-only inference."""
        return "reflect" if mode == "z-only" else "replicate"

    # --- the reference's y coder: "normal" with another coder for the prior's stream ------------------

    def _compress(
        self, image: torch.Tensor | None, latent: torch.Tensor, mode: str, quality: int | None
    ) -> tuple[dict[str, bytes], torch.Tensor, torch.Tensor]:
        if mode != REFERENCE_MODE:
            return super()._compress(image, latent, mode, quality)
        if quality is not None:
            raise ConfigError(f"{type(self).__name__} has no rate control (quality {quality} was asked for)")
        if latent.shape[0] != 1:
            raise ValueError(f"compress codes one image at a time, got a batch of {latent.shape[0]}")
        y, z = self.analyse(image, latent)
        z_bytes, z_hat = self.fsq.compress(z)
        feature, side = self._entropy_feature(as_reference_layout(z_hat))
        y_bytes, y_hat = with_reference_coder(self.prior).method("compress")(y, feature=feature)
        return {"z": z_bytes, "y": y_bytes}, y_hat, side

    @torch.no_grad()
    def read_sections(self, sections: dict[str, bytes], padded_size: tuple[int, int], mode: str = "normal") -> Symbols:
        if mode != REFERENCE_MODE:
            return super().read_sections(sections, padded_size, mode)
        self._check_sections(sections, "normal")
        z_hat = self.fsq.decompress(sections["z"], self._z_shape(padded_size)).to(self._device)
        feature, side = self._entropy_feature(as_reference_layout(z_hat))
        y_shape = (1, self.prior.channels, *feature.shape[-2:])
        y_hat = with_reference_coder(self.prior).method("decompress")(sections["y"], y_shape, feature=feature)
        return Symbols(y_hat, side, section_bits(sections, y_hat.device))

    # --- the three pieces the FSQ-hyperprior stream logic needs ---------------------------------------

    def analyse(self, image: torch.Tensor, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, semantic = self.encoder(image, latent)
        return y, self.hyper_encoder(y, semantic)

    def entropy_feature(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(feature for the prior, z_semantic)."""
        return self.hyper_decoder(z_hat)

    def synthesize(self, y_hat: torch.Tensor, z_semantic: torch.Tensor) -> CodecOutput:
        """The receiver's side from y_hat and z_semantic: generator features and cross-attention tokens."""
        y_semantic = self.semantic(z_semantic)
        features = self.decoder(y_hat, y_semantic)
        return CodecOutput(features, to_tokens(y_semantic), extras={"y_semantic": y_semantic, "y_hat": y_hat})
