"""The latent-codec interface.

A latent codec sees the padded image (in [-1, 1]) and the autoencoder's latent, and hands the generator
a feature map plus optional cross-attention context. `forward` is for training (estimated bits);
`compress`/`decompress` make and read real streams, one named byte string per section.

The pipeline splits coding in two: the entropy path (`write_sections` / `read_sections`: everything the
symbols and their entropy parameters depend on) runs on one CPU thread so that both sides agree bit for bit,
and `finish` (the codec's synthesis of the generator's input from what the entropy path recovered) runs at
the caller's thread count. A codec that does not split keeps its whole `decompress` on the entropy path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    # --- the entropy path and the rest, for the pipeline's thread split ------------------------------

    @torch.no_grad()
    def write_sections(
        self, image: torch.Tensor, latent: torch.Tensor, mode: str = "normal", quality: int | None = None
    ) -> tuple[dict[str, bytes], Any]:
        """The entropy path of `compress_and_reconstruct`: the sections, and what `finish` turns into the
        CodecOutput `decompress` will return. By default all of it (`finish` then passes it through)."""
        return self.compress_and_reconstruct(image, latent, mode, quality)

    @torch.no_grad()
    def read_sections(self, sections: dict[str, bytes], padded_size: tuple[int, int], mode: str = "normal") -> Any:
        """The entropy path of `decompress`; `finish` does the rest. By default all of `decompress`."""
        return self.decompress(sections, padded_size, mode)

    @torch.no_grad()
    def finish(self, decoded: Any) -> CodecOutput:
        """What comes after the entropy path (no symbol depends on it): by default nothing."""
        return decoded
