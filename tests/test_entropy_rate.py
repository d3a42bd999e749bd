"""Training-time rate proxies, and their agreement with the real coder."""

import math

import numpy as np
import pytest
import torch

from onestep.entropy import GaussianConditional, add_uniform_noise, gaussian_bits, lower_bound, ste_round


def reference_bits(v: float, s: float) -> float:
    s = max(s, 0.11) * math.sqrt(2)
    p = 0.5 * (math.erfc((abs(v) - 0.5) / s) - math.erfc((abs(v) + 0.5) / s))
    return max(-math.log2(max(p, 1e-9) + 1e-5), 0.0)


def test_gaussian_bits_hand_values():
    residual = torch.tensor([0.0, 1.0, -1.0, 0.3, 2.5, 40.0, 0.0, 3.0])
    scales = torch.tensor([1.0, 1.0, 1.0, 0.5, 2.0, 1.0, 0.01, -4.0])
    expected = [reference_bits(v, s) for v, s in zip(residual.tolist(), scales.tolist())]
    assert gaussian_bits(residual, scales).tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # N(0, 1): P(|x| < 0.5) = erf(0.5 / sqrt 2) = 0.38292...
    assert gaussian_bits(torch.tensor(0.0), torch.tensor(1.0)).item() == pytest.approx(1.38486, abs=1e-4)
    # far tails hit the likelihood bound: -log2(1e-9 + 1e-5)
    assert gaussian_bits(torch.tensor(1e4), torch.tensor(1.0)).item() == pytest.approx(16.6096, abs=1e-3)


def test_gaussian_bits_broadcasts_and_stays_float32_under_autocast():
    residual = torch.randn(2, 4, 3, 3)
    scales = torch.rand(1, 4, 1, 1) + 0.2
    full = gaussian_bits(residual, scales)
    assert full.shape == (2, 4, 3, 3) and full.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = gaussian_bits(residual.bfloat16(), scales.bfloat16())
    assert low.dtype == torch.float32
    assert torch.allclose(low, gaussian_bits(residual.bfloat16().float(), scales.bfloat16().float()))


def test_gaussian_bits_gradients():
    residual = torch.tensor([0.2, 1.5, 3.0], requires_grad=True)
    scales = torch.tensor([0.05, 1.0, 2.0], requires_grad=True)
    gaussian_bits(residual, scales).sum().backward()
    assert torch.all(torch.isfinite(residual.grad)) and torch.all(torch.isfinite(scales.grad))
    assert residual.grad[1] > 0 and residual.grad[2] > 0  # larger residuals cost more
    # scale 0.05 is below the 0.11 bound: its gradient passes only when it would raise the scale
    assert scales.grad[0] <= 0


def test_lower_bound_gradient_rule():
    x = torch.tensor([0.0, 0.0, 2.0, 2.0], requires_grad=True)
    y = lower_bound(x, 1.0)
    assert y.tolist() == [1.0, 1.0, 2.0, 2.0]
    y.backward(torch.tensor([1.0, -1.0, 1.0, -1.0]))
    assert x.grad.tolist() == [0.0, -1.0, 1.0, -1.0]


def test_ste_round_and_noise():
    x = torch.tensor([0.4, 1.6, -2.5, 3.5], requires_grad=True)
    y = ste_round(x)
    assert y.tolist() == torch.round(x.detach()).tolist()
    y.sum().backward()
    assert x.grad.tolist() == [1.0] * 4
    z = torch.zeros(10_000)
    noisy = add_uniform_noise(z)
    assert noisy.abs().max() <= 0.5 and noisy.std() > 0.25 and noisy.shape == z.shape


def test_estimated_bits_match_real_bits():
    """y ~ N(mu, s), s log-uniform over the table: the proxy and the real stream agree within 1.5 %
    (measured: +0.4 %; the escape code for the widest scales is most of it)."""
    gc = GaussianConditional()
    rng = np.random.default_rng(0)
    n = 200_000
    scales = np.exp(rng.uniform(math.log(0.11), math.log(64.0), n)).astype(np.float32)
    mu = rng.normal(0.0, 5.0, n).astype(np.float32)
    y = (mu + rng.normal(0.0, 1.0, n) * scales).astype(np.float32)
    residual = torch.round(torch.from_numpy(y - mu))
    scales_t = torch.from_numpy(scales)
    enc = gc.encoder()
    enc.add(residual, gc.scale_index(scales_t))
    real = 8 * len(enc.finish())
    estimated = gaussian_bits(residual, scales_t).double().sum().item()
    assert real == pytest.approx(estimated, rel=0.015), (real, estimated)
