"""SSIMULACRA2 (version 2.1) in torch, ported from libjxl's `tools/ssimulacra2.cc` (BSD-3, the JPEG XL
Project Authors), so that it needs no C++ build and reuses the reference image's pyramid.

Steps as in the reference: 8-bit sRGB -> linear RGB -> XYB (libjxl's opsin absorbance, cube root),
rescaled to about 0..1; at 6 scales (2x2 box downsampling in linear RGB, edge pixels repeated), the
1-norm and 4-norm of an SSIM error map (without the luminance denominator) and of two edge maps
("ringing": edges only in the distorted image, "blurring": edges only in the original) per channel;
108 weighted terms, mapped to a score (100 = identical). The reference blurs with libjxl's recursive
Gaussian (sigma 1.5, Charalampidis 2016, zero outside the image); we convolve with that filter's impulse
response, computed here by running the same recursion, with zero padding. Arithmetic is float32 like
the reference, with per-plane sums in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

NUM_SCALES = 6
SIGMA = 1.5
C2 = 0.0009
# libjxl lib/jxl/cms/opsin_params.h
OPSIN_ABSORBANCE = (
    (0.30, 1.0 - 0.078 - 0.30, 0.078),
    (0.23, 1.0 - 0.078 - 0.23, 0.078),
    (0.24342268924547819, 0.20476744424496821, 1.0 - 0.24342268924547819 - 0.20476744424496821),
)
OPSIN_BIAS = 0.0037930732552754493
# Msssim::Score in tools/ssimulacra2.cc: channel (X, Y, B) -> scale -> norm (1, 4) -> (ssim, ringing, blur)
WEIGHTS = (
    0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0, 0.0, 0.0004371155730107379, 0.0,
    1.1041726426657346, 0.00066284834129271, 0.00015231632783718752, 0.0, 0.0016406437456599754, 0.0,
    1.8422455520539298, 11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653, 0.0,
    1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072, 0.9677937080626833, 0.0,
    0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053, 0.0004550992113792063, 0.0, 0.0,
    0.0013648766163243398, 0.0, 0.0, 0.0, 0.0, 0.0, 7.466890328078848, 0.0, 17.445833984131262,
    0.0006235601634041466, 0.0, 0.0, 6.683678146179332, 0.00037724407979611296, 1.027889937768264,
    225.20515300849274, 0.0, 0.0, 19.213238186143016, 0.0011401524586618361, 0.001237755635509985,
    176.39317598450694, 0.0, 0.0, 24.43300999870476, 0.28520802612117757, 0.0004485436923833408, 0.0, 0.0,
    0.0, 34.77906344483772, 44.835625328877896, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0008680556573291698, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0005313191874358747, 0.0, 0.00016533814161379112,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0004179171803251336, 0.0017290828234722833, 0.0, 0.0020827005846636437,
    0.0, 0.0, 8.826982764996862, 23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682,
    0.9834382792465353, 0.0012286405048278493, 171.2667255897307, 0.9807858872435379, 0.0, 0.0, 0.0,
    0.0005130064588990679, 0.0, 0.00010854057858411537,
)  # fmt: skip


@lru_cache(maxsize=4)
def recursive_gaussian_kernel(sigma: float = SIGMA) -> tuple[float, ...]:
    """Impulse response of libjxl's CreateRecursiveGaussian + FastGaussian1D (tools/gauss_blur.cc)."""
    radius = round(3.2795 * sigma + 0.2546)
    omega = [k * math.pi / (2.0 * radius) for k in (1, 3, 5)]
    p = [1.0 / math.tan(0.5 * omega[0]), -1.0 / math.tan(0.5 * omega[1]), 1.0 / math.tan(0.5 * omega[2])]
    r = [p[0] ** 2 / math.sin(omega[0]), -(p[1] ** 2) / math.sin(omega[1]), p[2] ** 2 / math.sin(omega[2])]
    rho = [math.exp(-0.5 * sigma * sigma * w * w) / radius for w in omega]
    d13, d35, d51 = p[0] * r[1] - r[0] * p[1], p[1] * r[2] - r[1] * p[2], p[2] * r[0] - r[2] * p[0]
    zeta15, zeta35 = d35 / d13, d51 / d13
    a = np.array([p, r, [zeta15, zeta35, 1.0]])
    gamma = np.array([1.0, radius * radius - sigma * sigma, zeta15 * rho[0] + zeta35 * rho[1] + rho[2]])
    beta = np.linalg.solve(a, gamma)
    n2 = [-beta[i] * math.cos(omega[i] * (radius + 1.0)) for i in range(3)]
    d1 = [-2.0 * math.cos(w) for w in omega]
    # run the recursion o[n] = n2 (in[n - N - 1] + in[n + N - 1]) - d1 o[n - 1] - o[n - 2] on a unit impulse
    size = 8 * radius + 1
    impulse = np.zeros(size)
    impulse[size // 2] = 1.0
    out = np.zeros(size)
    for i in range(3):
        prev = prev2 = 0.0
        for n in range(-radius + 1, size):
            left, right = n - radius - 1, n + radius - 1
            total = (impulse[left] if 0 <= left < size else 0.0) + (impulse[right] if 0 <= right < size else 0.0)
            value = n2[i] * total - d1[i] * prev - prev2
            prev2, prev = prev, value
            if n >= 0:
                out[n] += value
    taps = np.nonzero(np.abs(out) > 1e-7)[0]
    half = max(size // 2 - taps[0], taps[-1] - size // 2)
    return tuple(out[size // 2 - half : size // 2 + half + 1])


def _srgb_to_linear(image: torch.Tensor) -> torch.Tensor:
    x = image.to(torch.float32) / 255.0
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _positive_xyb(linear: torch.Tensor) -> torch.Tensor:
    """3 x H x W linear sRGB -> libjxl XYB with ssimulacra2's MakePositiveXYB."""
    matrix = torch.tensor(OPSIN_ABSORBANCE, dtype=linear.dtype, device=linear.device)
    mixed = torch.einsum("ij,jhw->ihw", matrix, linear) + OPSIN_BIAS
    mixed = mixed.clamp_min(0).pow(1 / 3) - math.cbrt(OPSIN_BIAS)
    x, y, b = 0.5 * (mixed[0] - mixed[1]), 0.5 * (mixed[0] + mixed[1]), mixed[2]
    return torch.stack([x * 14.0 + 0.42, y + 0.01, (b - y) + 0.55])


def _downsample(linear: torch.Tensor) -> torch.Tensor:
    """2x2 box average; an odd last row or column is averaged with itself (as the reference)."""
    _, height, width = linear.shape
    padded = F.pad(linear.unsqueeze(0), (0, width % 2, 0, height % 2), mode="replicate")
    return F.avg_pool2d(padded, 2)[0]


def _blur(planes: torch.Tensor) -> torch.Tensor:
    """Separable blur of C x H x W planes with the recursive Gaussian's kernel, zero outside."""
    kernel = torch.tensor(recursive_gaussian_kernel(), dtype=planes.dtype, device=planes.device)
    half = len(kernel) // 2
    channels = planes.shape[0]
    x = planes.unsqueeze(1)  # C x 1 x H x W
    x = F.conv2d(x, kernel.view(1, 1, 1, -1), padding=(0, half))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1), padding=(half, 0))
    return x.view(channels, *planes.shape[1:])


def _norms(error: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel: mean and 4-norm of a non-negative C x H x W error map (sums in float64)."""
    e = error.to(torch.float64).flatten(1)
    return e.mean(1), e.pow(4).mean(1).pow(0.25)


@dataclass
class _Scale:
    xyb: torch.Tensor
    mu: torch.Tensor
    sigma_sq: torch.Tensor


class Ssimulacra2:
    """score(reference, distorted) on 3 x H x W uint8 tensors; `prepare` keeps the reference's pyramid.
    NaN for images under 8 x 8 pixels, which the reference tool refuses."""

    def __init__(self, device: str = "cpu"):
        self.device = device

    def _pyramid(self, image: torch.Tensor) -> list[torch.Tensor]:
        """XYB of every scale the reference computes (it stops before a scale whose input is under 8 px)."""
        linear = _srgb_to_linear(image.to(self.device))
        scales = []
        for scale in range(NUM_SCALES):
            if min(linear.shape[1:]) < 8:
                break
            if scale:
                linear = _downsample(linear)
            scales.append(_positive_xyb(linear))
        return scales

    @torch.no_grad()
    def prepare(self, reference: torch.Tensor) -> list[_Scale]:
        return [_Scale(xyb, _blur(xyb), _blur(xyb * xyb)) for xyb in self._pyramid(reference)]

    @torch.no_grad()
    def measure(self, prepared: list[_Scale], distorted: torch.Tensor) -> float:
        total = 0.0
        terms = []  # channel -> scale -> norm -> (ssim, ringing, blur)
        for ref, xyb in zip(prepared, self._pyramid(distorted)):
            mu2, sigma2_sq, sigma12 = _blur(xyb), _blur(xyb * xyb), _blur(ref.xyb * xyb)
            mu1 = ref.mu
            num_m = 1.0 - (mu1 - mu2).square()
            num_s = 2 * (sigma12 - mu1 * mu2) + C2
            denom_s = (ref.sigma_sq - mu1.square()) + (sigma2_sq - mu2.square()) + C2
            ssim = _norms((1.0 - num_m * num_s / denom_s).clamp_min(0))
            ratio = (1.0 + (xyb - mu2).abs()) / (1.0 + (ref.xyb - mu1).abs()) - 1.0
            ringing, blurring = _norms(ratio.clamp_min(0)), _norms((-ratio).clamp_min(0))
            terms.append((ssim, ringing, blurring))
        if not terms:  # the reference tool refuses images under 8 x 8 pixels
            return math.nan
        weights = iter(WEIGHTS)
        for channel in range(3):
            for ssim, ringing, blurring in terms:
                for norm in range(2):
                    for values in (ssim, ringing, blurring):
                        total += next(weights) * abs(float(values[norm][channel]))
        return score_from_total(total)

    def score(self, reference: torch.Tensor, distorted: torch.Tensor) -> float:
        return self.measure(self.prepare(reference), distorted)


def score_from_total(total: float) -> float:
    """The reference's final mapping of the weighted sum to the 100-point scale."""
    x = total * 0.9562382616834844
    x = 2.326765642916932 * x - 0.020884521182843837 * x * x + 6.248496625763138e-05 * x * x * x
    return 100.0 - 10.0 * x**0.6276336467831387 if x > 0 else 100.0
