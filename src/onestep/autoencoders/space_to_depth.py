"""An exact, parameter-free autoencoder: pixel unshuffle.

Each factor x factor block of pixels becomes one latent position with 3 * factor**2 channels, so the
"latent" is the image rearranged and `decode(encode(x)) == x` bit for bit. It lets pixel-domain codecs
and small test models use the same pipeline as latent-diffusion ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Autoencoder


class SpaceToDepth(Autoencoder):
    def __init__(self, factor: int = 8, channels: int = 3) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"factor must be at least 1, got {factor}")
        self.factor = factor
        self.latent_channels = channels * factor**2
        self.downsampling = factor

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(image, self.factor)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(latent, self.factor)
