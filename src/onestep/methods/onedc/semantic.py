"""OneDC's semantic adaptor (digest §5.3): z_semantic -> the map whose pixels become the generator's
cross-attention tokens (one token per z position)."""

from __future__ import annotations

import torch
from torch import nn

from ...nn.attention import AttnBlock
from ...nn.depth_conv import DepthConvBlock
from ...nn.resnet import ResnetBlock


class SemanticAdaptor(nn.Module):
    """DCB4(in -> dim), ResnetBlock, 2 AttnBlocks, ResnetBlock, 2 AttnBlocks, DCB4(dim)."""

    def __init__(self, in_channels: int = 128, dim: int = 768) -> None:
        super().__init__()
        self.to_semantic = nn.Sequential(
            DepthConvBlock(in_channels, dim),
            ResnetBlock(dim),
            AttnBlock(dim),
            AttnBlock(dim),
            ResnetBlock(dim),
            AttnBlock(dim),
            AttnBlock(dim),
            DepthConvBlock(dim),
        )

    def forward(self, z_semantic: torch.Tensor) -> torch.Tensor:
        return self.to_semantic(z_semantic)


def to_tokens(semantic_map: torch.Tensor) -> torch.Tensor:
    """B x D x h x w -> B x (h w) x D, row-major positions (the reference's `b c h w -> b (h w) c`)."""
    return semantic_map.flatten(2).transpose(1, 2)
