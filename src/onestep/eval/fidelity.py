"""Pixel-fidelity metrics: PSNR and MS-SSIM on RGB images.

Images are uint8 tensors 3 x H x W (or B x 3 x H x W) or floats in [0, 1]. PSNR follows the one-step
codecs' evaluation: -10 log10(MSE) over all pixels and channels in [0, 1], per image (the report averages
per-image values). MS-SSIM is the 5-scale version of Wang, Simoncelli and Bovik (2003) with the
parameters of `pytorch_msssim` (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, the standard
scale weights, average-pooling by 2 with odd sizes padded, float32), per channel, then averaged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03


def to_unit_float(image: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """uint8 [0, 255] or float [0, 1] -> float [0, 1] with a batch dimension."""
    x = image.to(dtype)
    if image.dtype == torch.uint8:
        x = x / 255.0
    return x if x.dim() == 4 else x.unsqueeze(0)


def psnr(reference: torch.Tensor, reconstruction: torch.Tensor) -> float:
    """PSNR in dB of one image (values in [0, 1] or uint8); inf for identical images."""
    mse = (to_unit_float(reference) - to_unit_float(reconstruction)).square().mean().item()
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords.square() / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter; skipped along a dimension shorter than the window
    (what pytorch_msssim does, so tiny coarse scales still give a value)."""
    channels, k = x.shape[1], window.numel()
    if x.shape[2] >= k:
        x = F.conv2d(x, window.view(1, 1, k, 1).expand(channels, 1, k, 1), groups=channels)
    if x.shape[3] >= k:
        x = F.conv2d(x, window.view(1, 1, 1, k).expand(channels, 1, 1, k), groups=channels)
    return x


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean SSIM and mean contrast-structure term, each B x C (data range 1)."""
    c1, c2 = K1**2, K2**2
    # (Co)variances do not change when a constant is subtracted; subtracting each channel's mean first
    # keeps float32 rounding in E[x^2] - E[x]^2 far below C2 in flat regions.
    shift_x, shift_y = x.mean(dim=(2, 3), keepdim=True), y.mean(dim=(2, 3), keepdim=True)
    x, y = x - shift_x, y - shift_y
    # one filtering pass over the five moments instead of five passes
    mu_x, mu_y, xx, yy, xy = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), window).chunk(5, dim=1)
    var_x = xx - mu_x.square()
    var_y = yy - mu_y.square()
    cov = xy - mu_x * mu_y
    mu_x, mu_y = mu_x + shift_x, mu_y + shift_y
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x.square() + mu_y.square() + c1) * cs_map
    return ssim_map.mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))


def ms_ssim(reference: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """MS-SSIM per image (shape B, or a 0-d tensor for one 3 x H x W image), data range 1.

    Images need a smaller side of at least 161 px for five full scales; smaller images are still
    scored, with the Gaussian window skipped along dimensions that became shorter than it.
    """
    x, y = to_unit_float(reference, torch.float32), to_unit_float(reconstruction, torch.float32)
    if x.shape != y.shape:
        raise ValueError(f"MS-SSIM needs images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    window = gaussian_window().to(x.device, x.dtype)
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=x.dtype, device=x.device)
    contrast = []
    for scale in range(len(MS_SSIM_WEIGHTS)):
        ssim_value, cs = _ssim_terms(x, y, window)
        if scale < len(MS_SSIM_WEIGHTS) - 1:
            contrast.append(torch.relu(cs))
            padding = [size % 2 for size in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    terms = torch.stack([*contrast, torch.relu(ssim_value)], dim=0)  # scales x B x C
    value = torch.prod(terms ** weights.view(-1, 1, 1), dim=0).mean(dim=1)
    return value if reference.dim() == 4 else value[0]
