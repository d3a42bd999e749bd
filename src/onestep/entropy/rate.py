"""Training-time quantizers and rate proxies (the reference codec, digest section 5.8).

These estimate what the real coder (`gaussian.py`) spends; they share only the scale bound with it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .tables import SCALE_MIN


def ste_round(x: Tensor) -> Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def add_uniform_noise(x: Tensor) -> Tensor:
    """x + U(-0.5, 0.5), the differentiable stand-in for rounding in the rate term."""
    return x + torch.empty_like(x).uniform_(-0.5, 0.5)


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows where it would push x up from below the bound."""

    @staticmethod
    def forward(ctx, x: Tensor, bound: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes.to(grad.dtype), None


def lower_bound(x: Tensor, bound: float) -> Tensor:
    return _LowerBound.apply(x, bound)


def gaussian_bits(
    residual: Tensor, scales: Tensor, scale_bound: float = SCALE_MIN, likelihood_bound: float = 1e-9
) -> Tensor:
    """Estimated bits per element of coding `residual` (noisy or rounded) under N(0, max(scale, bound)):
    the mass of the unit bin around |residual|, bounded below, then max(-log2(p + 1e-5), 0) as in the
    reference. Computed in float32 whatever the autocast dtype."""
    with torch.autocast(residual.device.type, enabled=False):
        v = residual.float().abs()
        s = lower_bound(scales.float(), scale_bound) * math.sqrt(2.0)
        p = 0.5 * (torch.erfc((v - 0.5) / s) - torch.erfc((v + 0.5) / s))
        p = lower_bound(p, likelihood_bound)
        return (-torch.log2(p + 1e-5)).clamp_min(0.0)
