"""OneDC's latent codec (digest §1-5): y with a hyperprior z (FSQ, fixed-length indices) and the 4-pass
spatial prior; the decoder side turns (y_hat, z) into the generator's 320-channel input and the
cross-attention tokens.

    image, latent -> encoder -> y (/16), semantic map (/64) -> hyper_encoder -> z (/64) -> FSQ indices
    z_hat -> hyper_decoder -> entropy feature (/16) -> prior -> y_hat;   z_semantic -> semantic -> tokens
    y_hat, semantic map -> decoder -> features (/8)

Modes: "normal" sends z and y; "z-only" (the reference's extreme-low-rate variant, §5.12) sends z only,
and y_hat is the prior's predicted means. The entropy-parameter path (hyper_decoder and prior) always
runs in float32 outside autocast so that streams decode bit-exactly.
"""

from __future__ import annotations

import torch

from ..entropy.fsq import FSQ
from ..entropy.packing import pack_indices, unpack_indices
from ..errors import ConfigError, StreamError
from .base import CodecOutput, LatentCodec
from .hyperprior import HyperDecoder, HyperEncoder
from .onedc_decoder import OneDCDecoder
from .onedc_encoder import PATCH_SIZE, UNET_LEVELS, OneDCEncoder
from .semantic import SemanticAdaptor, to_tokens
from .spatial_prior import FourPassPrior

SECTIONS = {"normal": ("z", "y"), "z-only": ("z",)}


class OneDCCodec(LatentCodec):
    """Constructor arguments are the config; `full()` is the reference structure (394,147,783 parameters),
    `tiny()` a small one for tests."""

    pad_multiple = PATCH_SIZE * 2**UNET_LEVELS
    modes = tuple(SECTIONS)

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

    # --- shared pieces -------------------------------------------------------------------------------

    def _entropy_feature(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device_type=z_hat.device.type, enabled=False):
            return self.hyper_decoder(z_hat.float())

    def synthesize(self, y_hat: torch.Tensor, z_semantic: torch.Tensor) -> CodecOutput:
        """The receiver's side from y_hat and z_semantic: generator features and cross-attention tokens."""
        y_semantic = self.semantic(z_semantic)
        features = self.decoder(y_hat, y_semantic)
        return CodecOutput(features, to_tokens(y_semantic), extras={"y_semantic": y_semantic, "y_hat": y_hat})

    # --- training ------------------------------------------------------------------------------------

    def forward(self, image: torch.Tensor, latent: torch.Tensor) -> CodecOutput:
        """Estimated bits: y from the prior (noisy residual when training, rounded otherwise); z at the fixed
        index length. y_hat uses straight-through rounding."""
        y, semantic = self.encoder(image, latent)
        z_hat, _ = self.fsq(self.hyper_encoder(y, semantic))
        feature, z_semantic = self._entropy_feature(z_hat)
        y_hat, y_bits = self.prior(feature, y)
        out = self.synthesize(y_hat, z_semantic)
        z_count = z_hat.shape[-2] * z_hat.shape[-1]
        out.bits = {"y": y_bits, "z": y_bits.new_full(y_bits.shape, float(z_count * self.fsq.bits_per_index))}
        out.extras["z_hat"] = z_hat
        return out

    # --- real streams --------------------------------------------------------------------------------

    def _compress(
        self, image: torch.Tensor, latent: torch.Tensor, mode: str
    ) -> tuple[dict[str, bytes], torch.Tensor, torch.Tensor]:
        if mode not in SECTIONS:
            raise ConfigError(f"OneDC has no mode {mode!r} (it has: {', '.join(self.modes)})")
        if image.shape[0] != 1:
            raise ValueError(f"compress codes one image at a time, got a batch of {image.shape[0]}")
        y, semantic = self.encoder(image, latent)
        _, indices = self.fsq(self.hyper_encoder(y, semantic))
        # The decoder only sees the indices: derive z_hat from them exactly as it will.
        z_hat = self.fsq.indices_to_codes(indices)
        feature, z_semantic = self._entropy_feature(z_hat)
        sections = {"z": pack_indices(indices.flatten().cpu(), self.fsq.bits_per_index)}
        if mode == "normal":
            sections["y"], y_hat = self.prior.compress(feature, y)
        else:
            y_hat = self.prior.predict(feature)
        return sections, y_hat, z_semantic

    @torch.no_grad()
    def compress(self, image: torch.Tensor, latent: torch.Tensor, mode: str = "normal") -> dict[str, bytes]:
        return self._compress(image, latent, mode)[0]

    @torch.no_grad()
    def compress_and_reconstruct(
        self, image: torch.Tensor, latent: torch.Tensor, mode: str = "normal"
    ) -> tuple[dict[str, bytes], CodecOutput]:
        """`compress`, plus what `decompress` will return, computed on the encoder's side."""
        sections, y_hat, z_semantic = self._compress(image, latent, mode)
        out = self.synthesize(y_hat, z_semantic)
        out.bits = _section_bits(sections, y_hat.device)
        return sections, out

    @torch.no_grad()
    def decompress(self, sections: dict[str, bytes], padded_size: tuple[int, int], mode: str = "normal") -> CodecOutput:
        _check_sections(sections, mode)
        height, width = padded_size
        if height <= 0 or width <= 0 or height % self.pad_multiple or width % self.pad_multiple:
            raise StreamError(f"padded size {width}x{height} is not a positive multiple of {self.pad_multiple}")
        zh, zw = height // self.pad_multiple, width // self.pad_multiple
        indices = unpack_indices(sections["z"], zh * zw, self.fsq.bits_per_index)
        device = next(self.parameters()).device
        indices = torch.as_tensor(indices, dtype=torch.int64).reshape(1, zh, zw).to(device)
        z_hat = self.fsq.indices_to_codes(indices)
        feature, z_semantic = self._entropy_feature(z_hat)
        y_hat = self.prior.decompress(feature, sections["y"]) if mode == "normal" else self.prior.predict(feature)
        out = self.synthesize(y_hat, z_semantic)
        out.bits = _section_bits(sections, device)
        return out


def _check_sections(sections: dict[str, bytes], mode: str) -> None:
    if mode not in SECTIONS:
        raise StreamError(f"OneDC has no mode {mode!r} (it has: {', '.join(SECTIONS)})")
    expected = SECTIONS[mode]
    missing = [name for name in expected if name not in sections]
    if missing:
        raise StreamError(f"OneDC stream ({mode}) is missing section(s): {', '.join(missing)}")
    unexpected = [name for name in sections if name not in expected]
    if unexpected:
        raise StreamError(f"OneDC stream ({mode}) has unexpected section(s): {', '.join(unexpected)}")


def _section_bits(sections: dict[str, bytes], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: torch.tensor([8.0 * len(data)], device=device) for name, data in sections.items()}
