import math

import torch

from onestep.generators.schedule import alpha_bar, scaled_linear_alphas_cumprod, x0_from_epsilon


def test_alpha_bar_999_is_sd15_float32_value():
    assert alpha_bar(999) == 0.00466009508818388


def test_schedule_matches_diffusers_scheduler():
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    assert torch.equal(scaled_linear_alphas_cumprod(), scheduler.alphas_cumprod)


def test_x0_inverts_forward_noising():
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 4, 8, 8, generator=gen)
    abar = alpha_bar(999)
    x_t = (math.sqrt(abar) * x0.double() + math.sqrt(1 - abar) * eps.double()).float()
    recovered = x0_from_epsilon(x_t, eps, abar)
    assert recovered.dtype == torch.float32
    # The digest's rounded constants: x0 ~ 14.6488 r - 14.6146 eps.
    assert torch.allclose(x0_from_epsilon(torch.ones(1), torch.zeros(1), abar), torch.tensor([14.6488]), atol=1e-4)
    assert torch.allclose(x0_from_epsilon(torch.zeros(1), torch.ones(1), abar), torch.tensor([-14.6146]), atol=1e-4)
    # x_t is float32, so the recovered x0 carries ~14.6 x its rounding error.
    assert (recovered - x0).abs().max() < 1e-5


def test_x0_is_computed_in_float64():
    abar = alpha_bar(999)
    gen = torch.Generator().manual_seed(0)
    r, eps = torch.randn(4096, generator=gen), torch.randn(4096, generator=gen)
    exact = ((r.double() - math.sqrt(1 - abar) * eps.double()) / math.sqrt(abar)).float()
    in_float32 = (r - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    assert torch.equal(x0_from_epsilon(r, eps, abar), exact)
    assert not torch.equal(in_float32, exact)  # the two precisions do differ on this input
