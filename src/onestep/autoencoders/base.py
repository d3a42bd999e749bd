"""The autoencoder interface: pixels in [-1, 1] <-> a (scaled) latent the generator works in."""

from __future__ import annotations

import json
from typing import Any

import torch

from ..modeling import ModelMixin, state_dict_fingerprint


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

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors `encode` depends on. Subclasses with a decoder leave it out; the default is all."""
        return self.state_dict()

    def encoding_settings(self) -> dict[str, Any]:
        """Settings besides the weights that change what `encode` returns (e.g. latent scaling)."""
        return {}

    def encoder_fingerprint(self) -> str:
        """Identifies what determines the latents: the encoder's weights and settings, not the decoder's (a
        model may retrain or replace its decoder and still use latents packed with the original)."""
        state = dict(self.encoder_state_dict())
        settings = self.encoding_settings()
        if settings:  # as one more "tensor": the settings' canonical JSON
            text = json.dumps(settings, sort_keys=True).encode()
            state["encoding_settings"] = torch.frombuffer(bytearray(text), dtype=torch.uint8)
        return state_dict_fingerprint(state).hex()


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
