"""The stream logic shared by every codec whose side information is an FSQ-quantised z and whose y is
coded with the 4-pass spatial prior (OneDC's codec, the default model's codec, ...).

Subclasses provide three pieces and get `forward`, `compress`, `compress_and_reconstruct` and
`decompress` from here:

    analyse(image, latent)  -> y (@ s), z before quantisation (@ s * 2^k)        sender only
    entropy_feature(z_hat)  -> feature for the prior (@ s), side information       both sides
    synthesize(y_hat, side) -> CodecOutput (generator features, context)           receiver

Sections: "z" (fixed-length FSQ indices) and, in the "normal" mode, "y" (one stream of 4 chunks).
The "z-only" mode sends z alone; y_hat is then the prior's predicted means, pass by pass.
"""

from __future__ import annotations

import torch

from ..entropy.fsq import FSQ
from ..entropy.packing import pack_indices, unpack_indices
from ..errors import ConfigError, StreamError
from .base import CodecOutput, LatentCodec
from .spatial_prior import FourPassPrior

SECTIONS = {"normal": ("z", "y"), "z-only": ("z",)}


class FSQHyperpriorCodec(LatentCodec):
    """Subclasses set `fsq`, `prior` and `pad_multiple` (the pixel size of one z position)."""

    modes = tuple(SECTIONS)
    fsq: FSQ
    prior: FourPassPrior

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
        """Estimated bits: y from the prior (noisy residual when training, rounded otherwise); z at the fixed
        index length. y_hat uses straight-through rounding."""
        y, z = self.analyse(image, latent)
        z_hat, _ = self.fsq(z)
        feature, side = self._entropy_feature(z_hat)
        y_hat, y_bits = self.prior(feature, y)
        out = self.synthesize(y_hat, side)
        z_count = z_hat.shape[-2] * z_hat.shape[-1]
        out.bits = {"y": y_bits, "z": y_bits.new_full(y_bits.shape, float(z_count * self.fsq.bits_per_index))}
        out.extras["z_hat"] = z_hat
        return out

    # --- real streams --------------------------------------------------------------------------------

    def _compress(
        self, image: torch.Tensor | None, latent: torch.Tensor, mode: str
    ) -> tuple[dict[str, bytes], torch.Tensor, torch.Tensor]:
        if mode not in SECTIONS:
            raise ConfigError(f"{type(self).__name__} has no mode {mode!r} (it has: {', '.join(self.modes)})")
        if latent.shape[0] != 1:
            raise ValueError(f"compress codes one image at a time, got a batch of {latent.shape[0]}")
        y, z = self.analyse(image, latent)
        _, indices = self.fsq(z)
        # The decoder only sees the indices: derive z_hat from them exactly as it will.
        z_hat = self.fsq.indices_to_codes(indices)
        feature, side = self._entropy_feature(z_hat)
        sections = {"z": pack_indices(indices.flatten().cpu(), self.fsq.bits_per_index)}
        if mode == "normal":
            sections["y"], y_hat = self.prior.compress(feature, y)
        else:
            y_hat = self.prior.predict(feature)
        return sections, y_hat, side

    @torch.no_grad()
    def compress(self, image: torch.Tensor | None, latent: torch.Tensor, mode: str = "normal") -> dict[str, bytes]:
        return self._compress(image, latent, mode)[0]

    @torch.no_grad()
    def compress_and_reconstruct(
        self, image: torch.Tensor | None, latent: torch.Tensor, mode: str = "normal"
    ) -> tuple[dict[str, bytes], CodecOutput]:
        """`compress`, plus what `decompress` will return, computed on the encoder's side."""
        sections, y_hat, side = self._compress(image, latent, mode)
        out = self.synthesize(y_hat, side)
        out.bits = section_bits(sections, y_hat.device)
        return sections, out

    @torch.no_grad()
    def decompress(self, sections: dict[str, bytes], padded_size: tuple[int, int], mode: str = "normal") -> CodecOutput:
        self._check_sections(sections, mode)
        height, width = padded_size
        if height <= 0 or width <= 0 or height % self.pad_multiple or width % self.pad_multiple:
            raise StreamError(f"padded size {width}x{height} is not a positive multiple of {self.pad_multiple}")
        zh, zw = height // self.pad_multiple, width // self.pad_multiple
        indices = unpack_indices(sections["z"], zh * zw, self.fsq.bits_per_index, num_codes=self.fsq.codebook_size)
        device = next(self.parameters()).device
        indices = torch.as_tensor(indices, dtype=torch.int64).reshape(1, zh, zw).to(device)
        z_hat = self.fsq.indices_to_codes(indices)
        feature, side = self._entropy_feature(z_hat)
        y_hat = self.prior.decompress(feature, sections["y"]) if mode == "normal" else self.prior.predict(feature)
        out = self.synthesize(y_hat, side)
        out.bits = section_bits(sections, device)
        return out

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
