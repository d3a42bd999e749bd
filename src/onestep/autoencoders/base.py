"""The autoencoder interface: pixels in [-1, 1] <-> a (scaled) latent the generator works in."""

from __future__ import annotations

import torch

from ..modeling import ModelMixin


class Autoencoder(ModelMixin):
    """Subclasses set `latent_channels` and `downsampling` and implement `encode`/`decode`.

    `encode` returns the latent already multiplied by the model's scaling factor (the space the
    generator predicts in); `decode` takes that scaled latent. Autoencoders are frozen parts:
    a pipeline never trains them unless a training config says so.
    """

    latent_channels: int
    downsampling: int

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class PixelSpace(Autoencoder):
    """The identity autoencoder: the 'latent' is the image itself. For tests and pixel-domain codecs."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.latent_channels = channels
        self.downsampling = 1

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent
