"""OneDC's codec encoder (digest §5.2): pixels + autoencoder latent -> y (at /16) and a semantic map (at /64).

The backbone is a diffusers `UNet2DModel` whose conv_in is replaced by three ResnetBlocks and a stride-2
conv (so it starts at /16), run at a fixed timestep; the mid-block output is the semantic map.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DModel
from torch import nn

from ...nn.attention import AttnBlock
from ...nn.depth_conv import DepthConvBlock
from ...nn.resnet import ResnetBlock

PATCH_SIZE = 8  # pixels per latent position (the SD VAE's downsampling)
UNET_LEVELS = 3  # the backbone's resolutions: /16, /32, /64


def unet_encoder(
    in_channels: int,
    out_channels: int,
    block_channels: tuple[int, ...],
    attention_head_dim: int,
    time_dim: int | None = None,
    norm_groups: int = 32,
) -> UNet2DModel:
    """The backbone: attention in all but the last level, diffusers defaults otherwise (time embedding
    width 4 x block_channels[0] unless `time_dim` is given), new conv_in."""
    if len(block_channels) != UNET_LEVELS:
        raise ValueError(f"the OneDC encoder UNet has {UNET_LEVELS} levels, got block channels {block_channels}")
    unet = UNet2DModel(
        in_channels=in_channels,
        out_channels=out_channels,
        down_block_types=("AttnDownBlock2D",) * (UNET_LEVELS - 1) + ("DownBlock2D",),
        up_block_types=("AttnUpBlock2D",) * (UNET_LEVELS - 1) + ("UpBlock2D",),
        block_out_channels=tuple(block_channels),
        layers_per_block=2,
        attention_head_dim=attention_head_dim,
        time_embedding_dim=time_dim,
        norm_num_groups=norm_groups,
    )
    width = block_channels[0]
    unet.conv_in = nn.Sequential(
        ResnetBlock(in_channels, width),
        ResnetBlock(width),
        ResnetBlock(width),
        nn.Conv2d(width, width, 3, stride=2, padding=1),
    )
    return unet


def run_unet_encoder(unet: UNet2DModel, x: torch.Tensor, timestep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """UNet2DModel's forward at a fixed timestep, also returning the mid-block output: (output, mid)."""
    t = torch.full((x.shape[0],), timestep, dtype=torch.long, device=x.device)
    emb = unet.time_embedding(unet.time_proj(t).to(unet.dtype))
    h = unet.conv_in(x)
    skips: tuple[torch.Tensor, ...] = (h,)
    for block in unet.down_blocks:
        h, block_skips = block(hidden_states=h, temb=emb)
        skips += block_skips
    mid = h = unet.mid_block(h, emb)
    for block in unet.up_blocks:
        n = len(block.resnets)
        h = block(h, skips[-n:], emb)
        skips = skips[:-n]
    h = unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))
    return h, mid


class OneDCEncoder(nn.Module):
    """`pix_emb` (8x8 patches), `pix_fusion` (1x1 on cat(patches, latent)), `unet`, `trans_coding` to y."""

    def __init__(
        self,
        latent_channels: int = 4,
        patch_channels: int = 192,
        fused_channels: int = 320,
        unet_channels: tuple[int, ...] = (512, 768, 768),
        attention_head_dim: int = 8,
        time_dim: int | None = None,
        norm_groups: int = 32,
        channels: int = 512,
        y_channels: int = 128,
        timestep: int = 999,
    ) -> None:
        super().__init__()
        self.timestep = timestep
        self.pix_emb = nn.Conv2d(3, patch_channels, PATCH_SIZE, stride=PATCH_SIZE)
        self.pix_fusion = nn.Conv2d(patch_channels + latent_channels, fused_channels, 1)
        self.unet = unet_encoder(
            fused_channels, channels, tuple(unet_channels), attention_head_dim, time_dim, norm_groups
        )
        self.trans_coding = nn.Sequential(
            ResnetBlock(channels),
            AttnBlock(channels),
            ResnetBlock(channels),
            DepthConvBlock(channels),
            DepthConvBlock(channels, y_channels),
        )

    def forward(self, image: torch.Tensor, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image B x 3 x H x W, latent B x L x H/8 x W/8 -> (y @ /16, semantic map @ /64)."""
        x = self.pix_fusion(torch.cat((self.pix_emb(image), latent), dim=1))
        features, semantic = run_unet_encoder(self.unet, x, self.timestep)
        return self.trans_coding(features), semantic
