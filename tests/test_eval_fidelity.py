"""PSNR and MS-SSIM on cases whose values are known by hand."""

import math

import pytest
import torch

from onestep.eval.fidelity import MS_SSIM_WEIGHTS, ms_ssim, psnr


def test_psnr_of_a_uniform_one_level_error_is_20_log10_255():
    x = torch.full((3, 16, 24), 100, dtype=torch.uint8)
    assert psnr(x, x + 1) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_psnr_matches_mse_formula_and_is_infinite_for_identical_images():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 20, 30), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 256, (3, 20, 30), generator=g, dtype=torch.uint8)
    mse = ((x.double() - y.double()) / 255).square().mean().item()
    assert psnr(x, y) == pytest.approx(-10 * math.log10(mse), rel=1e-12)
    assert psnr(x, x) == math.inf


def test_ms_ssim_of_identical_images_is_one():
    x = torch.randint(0, 256, (3, 192, 176), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    assert float(ms_ssim(x, x)) == pytest.approx(1.0, abs=1e-6)


def test_ms_ssim_of_two_constant_images_is_the_luminance_term_to_the_last_weight():
    # Flat images have zero (co)variance, so every contrast-structure term is exactly 1 and only the
    # coarsest scale's luminance term l = (2ab + C1) / (a^2 + b^2 + C1) remains, raised to its weight.
    # Sides divisible by 16 keep the pyramid free of the zero padding that odd sizes get.
    a, b, c1 = 0.5, 0.6, 0.01**2
    x = torch.full((3, 176, 208), a, dtype=torch.float64)
    y = torch.full((3, 176, 208), b, dtype=torch.float64)
    expected = ((2 * a * b + c1) / (a * a + b * b + c1)) ** MS_SSIM_WEIGHTS[-1]
    assert float(ms_ssim(x, y)) == pytest.approx(expected, abs=1e-6)


def test_ms_ssim_is_symmetric_and_falls_with_noise():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 176, 176, generator=g)
    noise = torch.randn(1, 3, 176, 176, generator=g)
    values = [float(ms_ssim(x, (x + s * noise).clamp(0, 1))[0]) for s in (0.02, 0.05, 0.1, 0.2)]
    assert values == sorted(values, reverse=True) and values[0] < 1
    y = (x + 0.05 * noise).clamp(0, 1)
    assert float(ms_ssim(x, y)[0]) == pytest.approx(float(ms_ssim(y, x)[0]), abs=1e-6)


def test_ms_ssim_scores_images_smaller_than_the_five_scale_pyramid():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 48, 40, generator=g)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2, dtype=torch.float32), atol=1e-6)
    noisy = ms_ssim(x, (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1))
    assert noisy.shape == (2,) and bool(((noisy > 0) & (noisy < 1)).all())
