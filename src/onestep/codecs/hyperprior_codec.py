"""A hyperprior codec as a composition: a side entropy model codes z (FSQ's fixed-length indices, or the
factorized prior), and a context prior codes y given the hyper-decoder's feature (the 4-pass prior, or
the checkerboard + channel-slice prior). This file holds the stream logic every such codec shares.

Subclasses provide the networks and get `forward`, `compress`, `compress_and_reconstruct` and
`decompress` from here:

    z_model                 -> the side entropy model (`entropy.base.EntropyModel`, `channels` of z)
    prior                   -> the context prior of y (`entropy.base.ContextPrior`)
    analyse(image, latent)  -> y (@ s), z before quantisation (@ s * 2^k)        sender only
    entropy_feature(z_hat)  -> feature for the prior (@ s), side information       both sides
    synthesize(y_hat, side) -> CodecOutput (generator features, context)           receiver

`write_sections` / `read_sections` are the entropy path (to `Symbols`), `finish` the synthesis: the
pipeline runs the first on one CPU thread and the second at the caller's thread count.

Sections: "z" (the side model's stream) and, in the "normal" mode, "y" (the context prior's stream).
The "z-only" mode sends z alone; y_hat is then the prior's prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..entropy.base import ContextPrior, EntropyModel
from ..errors import ConfigError, StreamError
from ..partial_load import weights_device
from .base import CodecOutput, LatentCodec

SECTIONS = {"normal": ("z", "y"), "z-only": ("z",)}


@dataclass
class Symbols:
    """What the entropy path recovered (`write_sections` / `read_sections`): y_hat and the side information
    `synthesize` needs, the sections' sizes, and anything a subclass adds for its `finish`."""

    y_hat: torch.Tensor
    side: torch.Tensor
    bits: dict[str, torch.Tensor]
    extras: dict[str, Any] = field(default_factory=dict)


class HyperpriorCodec(LatentCodec):
    """Subclasses set `z_model`, `prior` and `pad_multiple` (the pixel size of one z position)."""

    modes = tuple(SECTIONS)
    z_model: EntropyModel
    prior: ContextPrior

    def analyse(self, image: torch.Tensor | None, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def entropy_feature(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def synthesize(self, y_hat: torch.Tensor, side: torch.Tensor) -> CodecOutput:
        raise NotImplementedError

    def _entropy_feature(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # float32 outside autocast: the scale indices and means must be bit-identical on both sides
        with torch.autocast(device_type=z_hat.device.type, enabled=False):
            return self.entropy_feature(z_hat.float())

    # --- training ------------------------------------------------------------------------------------

    def forward(self, image: torch.Tensor | None, latent: torch.Tensor) -> CodecOutput:
        """Estimated bits of y and z (noisy residuals when training, rounded otherwise); y_hat and z_hat use
        straight-through rounding."""
        y, z = self.analyse(image, latent)
        z_hat, z_bits = self.z_model.estimate(z)
        feature, side = self._entropy_feature(z_hat)
        y_hat, y_bits = self.prior.estimate(y, feature=feature)
        out = self.synthesize(y_hat, side)
        out.bits = {"y": y_bits, "z": z_bits}
        out.extras["z_hat"] = z_hat
        return out

    # --- real streams --------------------------------------------------------------------------------

    def _compress(
        self, image: torch.Tensor | None, latent: torch.Tensor, mode: str, quality: int | None
    ) -> tuple[dict[str, bytes], torch.Tensor, torch.Tensor]:
        if mode not in SECTIONS:
            raise ConfigError(f"{type(self).__name__} has no mode {mode!r} (it has: {', '.join(self.modes)})")
        if quality is not None:
            raise ConfigError(f"{type(self).__name__} has no rate control (quality {quality} was asked for)")
        if latent.shape[0] != 1:
            raise ValueError(f"compress codes one image at a time, got a batch of {latent.shape[0]}")
        y, z = self.analyse(image, latent)
        sections = {}
        # z_hat as the decoder will derive it from the stream
        sections["z"], z_hat = self.z_model.compress(z)
        feature, side = self._entropy_feature(z_hat)
        if mode == "normal":
            sections["y"], y_hat = self.prior.compress(y, feature=feature)
        else:
            y_hat = self.prior.predict(feature)
        return sections, y_hat, side

    @torch.no_grad()
    def compress(
        self, image: torch.Tensor | None, latent: torch.Tensor, mode: str = "normal", quality: int | None = None
    ) -> dict[str, bytes]:
        return self._compress(image, latent, mode, quality)[0]

    @torch.no_grad()
    def write_sections(
        self, image: torch.Tensor | None, latent: torch.Tensor, mode: str = "normal", quality: int | None = None
    ) -> tuple[dict[str, bytes], Symbols]:
        sections, y_hat, side = self._compress(image, latent, mode, quality)
        return sections, Symbols(y_hat, side, section_bits(sections, y_hat.device))

    @torch.no_grad()
    def compress_and_reconstruct(
        self, image: torch.Tensor | None, latent: torch.Tensor, mode: str = "normal", quality: int | None = None
    ) -> tuple[dict[str, bytes], CodecOutput]:
        """`compress`, plus what `decompress` will return, computed on the encoder's side."""
        sections, symbols = self.write_sections(image, latent, mode, quality)
        return sections, self.finish(symbols)

    @torch.no_grad()
    def read_sections(self, sections: dict[str, bytes], padded_size: tuple[int, int], mode: str = "normal") -> Symbols:
        self._check_sections(sections, mode)
        z_hat = self.z_model.decompress(sections["z"], self._z_shape(padded_size)).to(self._device)
        feature, side = self._entropy_feature(z_hat)
        if mode == "normal":
            y_shape = (1, self.prior.channels, *feature.shape[-2:])
            y_hat = self.prior.decompress(sections["y"], y_shape, feature=feature)
        else:
            y_hat = self.prior.predict(feature)
        return Symbols(y_hat, side, section_bits(sections, y_hat.device))

    @torch.no_grad()
    def finish(self, decoded: Symbols) -> CodecOutput:
        out = self.synthesize(decoded.y_hat, decoded.side)
        out.bits = decoded.bits
        return out

    @torch.no_grad()
    def decompress(self, sections: dict[str, bytes], padded_size: tuple[int, int], mode: str = "normal") -> CodecOutput:
        return self.finish(self.read_sections(sections, padded_size, mode))

    @property
    def _device(self) -> torch.device:
        return weights_device(self)

    def _z_shape(self, padded_size: tuple[int, int]) -> tuple[int, int, int, int]:
        height, width = padded_size
        if height <= 0 or width <= 0 or height % self.pad_multiple or width % self.pad_multiple:
            raise StreamError(f"padded size {width}x{height} is not a positive multiple of {self.pad_multiple}")
        return (1, self.z_model.channels, height // self.pad_multiple, width // self.pad_multiple)

    def _check_sections(self, sections: dict[str, bytes], mode: str) -> None:
        name = type(self).__name__
        if mode not in SECTIONS:
            raise StreamError(f"{name} has no mode {mode!r} (it has: {', '.join(SECTIONS)})")
        expected = SECTIONS[mode]
        missing = [s for s in expected if s not in sections]
        if missing:
            raise StreamError(f"{name} stream ({mode}) is missing section(s): {', '.join(missing)}")
        unexpected = [s for s in sections if s not in expected]
        if unexpected:
            raise StreamError(f"{name} stream ({mode}) has unexpected section(s): {', '.join(unexpected)}")


def section_bits(sections: dict[str, bytes], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: torch.tensor([8.0 * len(data)], device=device) for name, data in sections.items()}
