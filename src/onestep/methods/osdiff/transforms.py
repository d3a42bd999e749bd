"""OSDiff's LFGCM transforms on the SD latent (reference `model/lfgcm.py`, `model/layers/`; digest §1.2).

    analysis        4 -> 64 (stride-2 residual block) -> 3 bottlenecks -> conv3x3 -> M = 320      (/16)
    hyper_analysis  conv3x3 M -> N = 192, GELU, conv5x5 s2, GELU, conv5x5 s2, conv1x1              (/64)
    hyper_synthesis deconv5x5 s2 N -> M, GELU, deconv5x5 s2 -> 3M/2, GELU, deconv3x3 s1 -> 2M      (/16)
    synthesis       conv3x3 M -> N, 3 bottlenecks, sub-pixel x2 residual block, 3 bottlenecks, conv3x3 -> 4 (/8)

The reference builds DiffEIC's SFT layers (`hyper_enc.h_a1/h_a4/h_a7/h_a8`, `hyper_enc.sft_feature*`) and a
side branch `f_c` that its `forward` never calls; they are left out here (the importer accepts and ignores
their keys). Parameter names follow the reference's `nn.Sequential` indices so the key map stays short.
"""

from __future__ import annotations

from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride)


def deconv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        in_channels, out_channels, kernel_size, stride=stride, output_padding=stride - 1, padding=kernel_size // 2
    )


class ResidualBlockWithStride(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride=stride)
        self.leaky_relu = nn.LeakyReLU()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.leaky_relu2 = nn.LeakyReLU(negative_slope=0.1)
        self.downsample = conv1x1(in_channels, out_channels, stride=stride)

    def forward(self, x):  # type: ignore[no-untyped-def]
        out = self.leaky_relu2(self.conv2(self.leaky_relu(self.conv1(x))))
        return out + self.downsample(x)


class SubpelConv(nn.Sequential):
    """1x1 conv to r^2 times the channels, then pixel shuffle (the reference's `subpel_conv1x1`)."""

    def __init__(self, in_channels: int, out_channels: int, r: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels * r**2, 1), nn.PixelShuffle(r))


class ResidualBlockUpsample(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, upsample: int = 2) -> None:
        super().__init__()
        self.subpel_conv = SubpelConv(in_channels, out_channels, upsample)
        self.leaky_relu = nn.LeakyReLU()
        self.conv = conv3x3(out_channels, out_channels)
        self.leaky_relu2 = nn.LeakyReLU(negative_slope=0.1)
        self.upsample = SubpelConv(in_channels, out_channels, upsample)

    def forward(self, x):  # type: ignore[no-untyped-def]
        out = self.leaky_relu2(self.conv(self.leaky_relu(self.subpel_conv(x))))
        return out + self.upsample(x)


class ResidualBottleneck(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(
            conv1x1(channels, half), nn.GELU(), conv3x3(half, half), nn.GELU(), conv1x1(half, channels)
        )

    def forward(self, x):  # type: ignore[no-untyped-def]
        return x + self.branch(x)


class Analysis(nn.Module):
    """G_a: SD latent (/8) -> y (/16). Reference `LFGCM.encoder` (`g_a1`, `g_a6`)."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.g_a1 = nn.Sequential(
            ResidualBlockWithStride(in_channels, mid_channels), *(ResidualBottleneck(mid_channels) for _ in range(3))
        )
        self.g_a6 = conv3x3(mid_channels, out_channels)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.g_a6(self.g_a1(x))


class HyperAnalysis(nn.Module):
    """h_a: y -> z (/64). Reference `LFGCM.hyper_enc` without its unused SFT layers."""

    def __init__(self, n: int, m: int) -> None:
        super().__init__()
        self.h_a0 = conv3x3(m, n)
        self.h_a2 = nn.GELU()
        self.h_a3 = nn.Conv2d(n, n, 5, stride=2, padding=2)
        self.h_a5 = nn.GELU()
        self.h_a6 = nn.Conv2d(n, n, 5, stride=2, padding=2)
        self.h_a9 = conv1x1(n, n)

    def forward(self, y):  # type: ignore[no-untyped-def]
        return self.h_a9(self.h_a6(self.h_a5(self.h_a3(self.h_a2(self.h_a0(y))))))


class HyperSynthesis(nn.Module):
    """h_s: z_hat -> 2M hyper parameters (/16). Reference `LFGCM.hyper_dec`."""

    def __init__(self, n: int, m: int) -> None:
        super().__init__()
        self.hyper_dec = nn.Sequential(
            deconv(n, m),
            nn.GELU(),
            deconv(m, m * 3 // 2),
            nn.GELU(),
            deconv(m * 3 // 2, m * 2, kernel_size=3, stride=1),
        )

    def forward(self, z_hat):  # type: ignore[no-untyped-def]
        return self.hyper_dec(z_hat)


class Synthesis(nn.Module):
    """G_s: y_hat (/16) -> c_latent (/8, the latent's channels). Reference `LFGCM.decoder`."""

    def __init__(self, n: int, m: int, out_channels: int) -> None:
        super().__init__()
        self.g_s2 = nn.Sequential(conv3x3(m, n), *(ResidualBottleneck(n) for _ in range(3)))
        self.g_s3 = nn.Sequential(ResidualBlockUpsample(n, n), *(ResidualBottleneck(n) for _ in range(3)))
        self.g_s4 = conv3x3(n, out_channels)

    def forward(self, y_hat):  # type: ignore[no-untyped-def]
        return self.g_s4(self.g_s3(self.g_s2(y_hat)))
