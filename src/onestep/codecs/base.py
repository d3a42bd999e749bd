"""The latent-codec interface.

A latent codec sees the padded image (in [-1, 1]) and the autoencoder's latent, and hands the generator
a feature map plus optional cross-attention context. `forward` is for training (estimated bits);
`compress`/`decompress` make and read real streams, one named byte string per section.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..modeling import ModelMixin


@dataclass
class CodecOutput:
    """What a latent codec gives the generator, plus what training needs."""

    features: torch.Tensor  # B x C x H/ds x W/ds, the generator's input
    context: torch.Tensor | None = None  # B x tokens x D cross-attention context, or None
    bits: dict[str, torch.Tensor] = field(default_factory=dict)  # estimated bits per image (shape B) by part
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. semantic maps for distillation

    def total_bits(self) -> torch.Tensor:
        return sum(self.bits.values())  # type: ignore[return-value]


class LatentCodec(ModelMixin):
    """Subclasses set `pad_multiple` (input sides must be multiples of it), `modes` (the container stores the
    mode's name) and, for rate control, `qualities`: the values `compress(..., quality=q)` accepts, rising in
    rate. A codec with qualities records the one used in its own sections, so `decompress` needs no argument."""

    pad_multiple: int
    modes: tuple[str, ...] = ("normal",)
    qualities: tuple[int, ...] = ()

    def pad_mode(self, mode: str) -> str:
        """How the image is padded to `pad_multiple` in `mode` (an `F.pad` mode)."""
        return "replicate"

    def forward(self, image: torch.Tensor, latent: torch.Tensor) -> CodecOutput:
        raise NotImplementedError

    @torch.no_grad()
    def compress(
        self, image: torch.Tensor, latent: torch.Tensor, mode: str = "normal", quality: int | None = None
    ) -> dict[str, bytes]:
        raise NotImplementedError

    @torch.no_grad()
    def compress_and_reconstruct(
        self, image: torch.Tensor, latent: torch.Tensor, mode: str = "normal", quality: int | None = None
    ) -> tuple[dict[str, bytes], CodecOutput]:
        """`compress`, plus what `decompress` will return, computed on the encoder's side."""
        raise NotImplementedError

    @torch.no_grad()
    def decompress(self, sections: dict[str, bytes], padded_size: tuple[int, int], mode: str = "normal") -> CodecOutput:
        """Rebuild the generator's input from the sections; `padded_size` is (H, W) in pixels."""
        raise NotImplementedError
