"""Hyper-encoder and hyper-decoder of the released one-step diffusion codec (digest §5.3), for any hyperprior.

The hyper-encoder takes y (and optionally a semantic map at the z resolution) down to the few channels
that FSQ quantizes; the hyper-decoder maps the quantized z back to y's resolution as the feature the
spatial prior turns into entropy parameters, and also returns its first projection (`z_semantic`),
which a method may turn into cross-attention tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.attention import AttnBlock
from ..nn.depth_conv import DepthConvBlock
from ..nn.upsample import ResidualBlockUpsample


class HyperEncoder(nn.Module):
    """y (C @ s) [+ semantic map (S @ s * 2^downsamplings)] -> z (z_channels @ s * 2^downsamplings).

    `y_trans_coding`: (DCB4, stride-2 3x3) per downsampling; `fusion`: DCB4 to widths[0], AttnBlock,
    DCB4 to widths[1], AttnBlock, DCB4, 1x1 to z_channels."""

    def __init__(
        self,
        y_channels: int,
        semantic_channels: int = 0,
        widths: tuple[int, int] = (768, 512),
        z_channels: int = 7,
        downsamplings: int = 2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(downsamplings):
            layers += [DepthConvBlock(y_channels), nn.Conv2d(y_channels, y_channels, 3, stride=2, padding=1)]
        self.y_trans_coding = nn.Sequential(*layers)
        first, second = widths
        self.fusion = nn.Sequential(
            DepthConvBlock(y_channels + semantic_channels, first),
            AttnBlock(first),
            DepthConvBlock(first, second),
            AttnBlock(second),
            DepthConvBlock(second),
            nn.Conv2d(second, z_channels, 1),
        )

    def forward(self, y: torch.Tensor, semantic: torch.Tensor | None = None) -> torch.Tensor:
        h = self.y_trans_coding(y)
        if semantic is not None:
            h = torch.cat((h, semantic), dim=1)
        return self.fusion(h)


class HyperDecoder(nn.Module):
    """z_hat -> (feature for the entropy parameters, `channels` @ y's resolution; z_semantic, `channels` @ z's).

    `feat_in`: 1x1 + LeakyReLU(0.01); `to_entropy`: DCB4, then (x2 RBU, DCB4) per upsampling."""

    def __init__(self, z_channels: int = 7, channels: int = 128, upsamplings: int = 2) -> None:
        super().__init__()
        self.feat_in = nn.Sequential(nn.Conv2d(z_channels, channels, 1), nn.LeakyReLU(0.01))
        layers: list[nn.Module] = [DepthConvBlock(channels)]
        for _ in range(upsamplings):
            layers += [ResidualBlockUpsample(channels, channels), DepthConvBlock(channels)]
        self.to_entropy = nn.Sequential(*layers)

    def forward(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z_semantic = self.feat_in(z_hat)
        return self.to_entropy(z_semantic), z_semantic
