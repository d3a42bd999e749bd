"""The one-step generator interface: codec features (+ context) -> the autoencoder's latent, in one call."""

from __future__ import annotations

import torch

from ..modeling import ModelMixin


class Generator(ModelMixin):
    def forward(self, features: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError
