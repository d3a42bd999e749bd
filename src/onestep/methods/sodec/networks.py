"""SODEC's convolutional parts: HiFiC's compression networks and the transformation module.

    HiFiCEncoder       E:   x (3 @ 1) -> y (220 @ /16)      7x7 conv, four stride-2 3x3 convs, 3x3 to y
    HiFiCGenerator     D_a: y_hat -> x_f (3 @ 1)            3x3 conv, 9 residual blocks, four 2x up-convs, 7x7
    HyperAnalysis      H_a: y -> z (320 @ /64)              HiFiC's: 3x3, 5x5 s2, 5x5 s2
    HyperSynthesis     H_s and the prior's mean / scale nets: z_hat -> (out @ /16), HiFiC's transposed convs
    TransformationModule  T_s: [y_hat, w] (@ /16) -> the 4-channel SD latent (@ /8), read as x_t at t = 999

HiFiC (Mentzer et al. 2020) normalises with ChannelNorm (per position over channels, learned affine) and pads
by reflection; widths are arguments so that `tiny` keeps the structure at test size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...nn.norm import group_norm
from ...nn.resnet import ResnetBlock


class ChannelNorm2d(nn.Module):
    """HiFiC's ChannelNorm: (x - mean_c) / sqrt(var_c + eps) * gamma + beta, statistics over channels only,
    so an image's normalisation never depends on its size or on other images (unlike BatchNorm/GroupNorm)."""

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        variance = x.var(dim=1, keepdim=True, unbiased=False)
        return (x - mean) * torch.rsqrt(variance + self.eps) * self.gamma + self.beta


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, padding_mode="reflect")


def _conv_norm_relu(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, kernel, stride), ChannelNorm2d(cout), nn.ReLU())


class HiFiCEncoder(nn.Module):
    """E: /2^len(widths[1:]) analysis; HiFiC's widths (60, 120, 240, 480, 960) give /16."""

    def __init__(self, widths: Sequence[int], y_channels: int) -> None:
        super().__init__()
        layers = [_conv_norm_relu(3, widths[0], 7)]
        layers += [_conv_norm_relu(cin, cout, 3, 2) for cin, cout in zip(widths[:-1], widths[1:])]
        layers.append(_conv(widths[-1], y_channels, 3))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class HiFiCResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3), ChannelNorm2d(channels), nn.ReLU(), _conv(channels, channels, 3),
            ChannelNorm2d(channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class HiFiCGenerator(nn.Module):
    """D_a: y_hat -> image, HiFiC's generator (without its noise channels). `widths` run from the
    narrowest (full resolution) to the widest (y's resolution), as the encoder's."""

    def __init__(self, y_channels: int, widths: Sequence[int], residual_blocks: int = 9) -> None:
        super().__init__()
        top = widths[-1]
        self.head = nn.Sequential(ChannelNorm2d(y_channels), _conv_norm_relu(y_channels, top, 3))
        self.residual = nn.Sequential(*(HiFiCResidualBlock(top) for _ in range(residual_blocks)))
        ups: list[nn.Module] = []
        for cin, cout in zip(widths[::-1][:-1], widths[::-1][1:]):
            ups += [nn.ConvTranspose2d(cin, cout, 3, 2, padding=1, output_padding=1), ChannelNorm2d(cout), nn.ReLU()]
        self.upsample = nn.Sequential(*ups)
        self.out = _conv(widths[0], 3, 7)

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        h = self.head(y_hat)
        h = h + self.residual(h)  # HiFiC's skip around the residual stack
        return self.out(self.upsample(h))


class HyperAnalysis(nn.Module):
    """H_a: y -> z at /4 of y (HiFiC: 3x3 s1, 5x5 s2, 5x5 s2, ReLU between)."""

    def __init__(self, y_channels: int, z_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(y_channels, z_channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(z_channels, z_channels, 5, 2, padding=2), nn.ReLU(),
            nn.Conv2d(z_channels, z_channels, 5, 2, padding=2),
        )  # fmt: skip

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.layers(y)


class HyperSynthesis(nn.Module):
    """z_hat -> `out_channels` at y's resolution (HiFiC: two 5x5 stride-2 transposed convs, 3x3 out)."""

    def __init__(self, z_channels: int, out_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(z_channels, z_channels, 5, 2, padding=2, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(z_channels, z_channels, 5, 2, padding=2, output_padding=1), nn.ReLU(),
            nn.Conv2d(z_channels, out_channels, 3, padding=1),
        )  # fmt: skip

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self.layers(z_hat)


class TransformationModule(nn.Module):
    """T_s(y_hat, w): concatenation at /16, `blocks` ResNet blocks, a 2x nearest upsampling + conv, one more
    block, then GN-SiLU-3x3 to the SD latent's 4 channels at /8. The paper gives only the input and output
    (§2.2 of the digest); this is the smallest design that changes resolution once and mixes y with w."""

    def __init__(self, y_channels: int, w_channels: int, width: int, latent_channels: int = 4, blocks: int = 2):
        super().__init__()
        self.inp = nn.Conv2d(y_channels + w_channels, width, 3, padding=1)
        self.low = nn.Sequential(*(ResnetBlock(width) for _ in range(blocks)))
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, width, 3, padding=1))
        self.high = ResnetBlock(width)
        self.out = nn.Sequential(group_norm(width), nn.SiLU(), nn.Conv2d(width, latent_channels, 3, padding=1))

    def forward(self, y_hat: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        h = self.low(self.inp(torch.cat([y_hat, w.to(y_hat.dtype)], dim=1)))
        return self.out(self.high(self.up(h)))
