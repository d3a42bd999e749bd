"""OneDC's codec decoder (digest §5.5): y_hat (@ /16) and the semantic map (@ /64) -> the generator's
input feature (@ /8)."""

from __future__ import annotations

import torch
from torch import nn

from ...nn.depth_conv import DepthConvBlock
from ...nn.resnet import ResnetBlock
from ...nn.upsample import ResidualBlockUpsample, subpixel_upsample_layers


class OneDCDecoder(nn.Module):
    """y branch: DCB4s, 3 ResnetBlocks, x2 sub-pixel upsampling, 3 ResnetBlocks. Semantic branch: three x2
    RBUs with DCB4s between. `conv_out`: DCB4 on the concatenation of both."""

    def __init__(
        self,
        y_channels: int = 128,
        channels: tuple[int, int] = (512, 256),
        semantic_dim: int = 768,
        out_channels: int = 320,
    ) -> None:
        super().__init__()
        coarse, fine = channels  # widths at /16 and at /8
        self.trans_coding = nn.Sequential(DepthConvBlock(y_channels, coarse), DepthConvBlock(coarse))
        self.blocks = nn.Sequential(
            *(ResnetBlock(coarse) for _ in range(3)),
            *subpixel_upsample_layers(coarse, fine),
            *(ResnetBlock(fine) for _ in range(3)),
        )
        self.sem_up = nn.Sequential(
            ResidualBlockUpsample(semantic_dim, coarse),
            DepthConvBlock(coarse),
            ResidualBlockUpsample(coarse, fine),
            DepthConvBlock(fine),
            ResidualBlockUpsample(fine, fine),
        )
        self.conv_out = DepthConvBlock(2 * fine, out_channels)

    def forward(self, y_hat: torch.Tensor, semantic_map: torch.Tensor) -> torch.Tensor:
        y_branch = self.blocks(self.trans_coding(y_hat))
        semantic_branch = self.sem_up(semantic_map)
        return self.conv_out(torch.cat((y_branch, semantic_branch), dim=1))
