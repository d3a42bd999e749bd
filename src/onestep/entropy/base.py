"""The entropy-model interface: one part that both estimates what coding a tensor costs (for training) and
really codes it (for streams), given whatever parameters the model is conditioned on.

Implemented by the Gaussian conditional (parameters: `scales`, `means`), FSQ (fixed-length indices, no
parameters), the factorized prior (no parameters; its density is learned) and the context priors of y
(parameter: the hyper-decoder's `feature`). A hyperprior codec is then a side model for z plus a context
prior for y. The contract every implementation passes is tests/entropy_testing.py.

Rules every implementation keeps:
  - `estimate` in eval mode and `compress` quantize identically, so `estimate(x)[0]` (no gradient) equals
    what `decompress` returns; in training mode the bits may come from noise (a differentiable proxy);
  - `compress` returns the stream and exactly what `decompress` will return, computed on the sender's side;
  - `decompress` raises `StreamError` (and nothing else) for streams it cannot read.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class EntropyModel(nn.Module):
    def estimate(self, x: torch.Tensor, **params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-time: (x_hat, differentiable where training needs it; estimated bits per batch item, shape B)."""
        raise NotImplementedError

    @torch.no_grad()
    def compress(self, x: torch.Tensor, **params: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        """(the stream, x_hat as `decompress` will return it)."""
        raise NotImplementedError

    @torch.no_grad()
    def decompress(self, data: bytes, shape: Sequence[int], **params: torch.Tensor) -> torch.Tensor:
        """x_hat of the given shape (B x C x H x W) from a stream made by `compress` with the same parameters."""
        raise NotImplementedError


class ContextPrior(EntropyModel):
    """An entropy model of y conditioned on the hyper-decoder's feature map at y's resolution: its one
    parameter is `feature` (B x hyper channels x H x W)."""

    @torch.no_grad()
    def predict(self, feature: torch.Tensor) -> torch.Tensor:
        """y_hat when no y is sent (a z-only mode): what the prior predicts, step by step."""
        raise NotImplementedError

    @staticmethod
    def feature(params: dict[str, torch.Tensor]) -> torch.Tensor:
        if set(params) != {"feature"}:
            raise TypeError(f"a context prior takes one parameter, feature, got {sorted(params)}")
        return params["feature"]


def check_shape(name: str, tensor: torch.Tensor, shape: Sequence[int]) -> None:
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")


def no_params(params: dict[str, torch.Tensor]) -> None:
    if params:
        raise TypeError(f"this entropy model takes no parameters, got {sorted(params)}")
