"""Building blocks of the TAESD family of tiny autoencoders (madebyollin/taesd), written from its description.

The encoder and decoder are plain `nn.Sequential`s so that their state-dict keys (`0.weight`,
`3.conv.0.weight`, `11.pool.1.bias`, ...) are those of the released `.pth` files.
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(n_in: int, n_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=bias)


def conv1x1(n_in: int, n_out: int) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 1, bias=False)


class SoftClamp(nn.Module):
    """3 * tanh(x / 3): keeps decoder inputs in (-3, 3) smoothly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class TinyBlock(nn.Module):
    """Three 3x3 convs with ReLUs, a residual, a final ReLU.

    With `midblock_gn` (the FLUX.2 variant), a pre-branch first adds a 1x1 expansion to 4x the width,
    GroupNorm(4 groups), ReLU and a 1x1 projection back: the only normalisation in the network, used in
    the lowest-resolution blocks.
    """

    def __init__(self, n_in: int, n_out: int, midblock_gn: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            conv3x3(n_in, n_out), nn.ReLU(), conv3x3(n_out, n_out), nn.ReLU(), conv3x3(n_out, n_out)
        )
        self.skip = conv1x1(n_in, n_out) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        self.pool: nn.Sequential | None = None
        if midblock_gn:
            expanded = 4 * n_in
            self.pool = nn.Sequential(
                conv1x1(n_in, expanded), nn.GroupNorm(4, expanded), nn.ReLU(), conv1x1(expanded, n_in)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


class TinyEncoder(nn.Sequential):
    """Image in [0, 1] -> latent at 1/8 resolution: three stride-2 stages, the last with `midblock_gn` blocks."""

    def __init__(self, latent_channels: int, width: int = 64, midblock_gn: bool = False) -> None:
        layers: list[nn.Module] = [conv3x3(3, width), TinyBlock(width, width)]
        for stage in range(3):
            layers.append(conv3x3(width, width, stride=2, bias=False))
            layers.extend(TinyBlock(width, width, midblock_gn and stage == 2) for _ in range(3))
        layers.append(conv3x3(width, latent_channels))
        super().__init__(*layers)


def _full_head(width: int) -> list[nn.Module]:
    """TAESD's last stage: upsample, conv, block and the RGB conv, all at full resolution."""
    return [nn.Upsample(scale_factor=2), conv3x3(width, width, bias=False), TinyBlock(width, width), conv3x3(width, 3)]


def _subpixel_head(width: int) -> list[nn.Module]:
    """A cheaper last stage: a block at half resolution, then a conv to 2x2 RGB sub-pixels and PixelShuffle."""
    return [TinyBlock(width, width), conv3x3(width, 3 * 4), nn.PixelShuffle(2)]


def _light_head(width: int) -> list[nn.Module]:
    """Replaces both the half- and the full-resolution stages: at half resolution, half the width and two
    blocks, then 2x2 RGB sub-pixels. About a third of the full decoder's work, for fast CPU decoding."""
    narrow = width // 2
    return [
        nn.Upsample(scale_factor=2),
        conv3x3(width, narrow, bias=False),
        TinyBlock(narrow, narrow),
        TinyBlock(narrow, narrow),
        conv3x3(narrow, 3 * 4),
        nn.PixelShuffle(2),
    ]


# head name -> (its layers, how many of the three pretrained 2x upsampling stages it keeps)
DECODER_HEADS = {"full": (_full_head, 2), "subpixel": (_subpixel_head, 2), "light": (_light_head, 1)}


class TinyDecoder(nn.Sequential):
    """Latent -> image in [0, 1] (not clamped). Layers from `head_start` on form the head: TAESD's last,
    full-resolution stage, or a cheaper replacement (`subpixel`, `light`) with new weights."""

    def __init__(self, latent_channels: int, width: int = 64, midblock_gn: bool = False, head: str = "full") -> None:
        layers: list[nn.Module] = [SoftClamp(), conv3x3(latent_channels, width), nn.ReLU()]
        layers.extend(TinyBlock(width, width, midblock_gn) for _ in range(3))
        make_head, kept_stages = DECODER_HEADS[head]
        for _ in range(kept_stages):
            layers.extend([nn.Upsample(scale_factor=2), conv3x3(width, width, bias=False)])
            layers.extend(TinyBlock(width, width) for _ in range(3))
        head_start = len(layers)
        layers.extend(make_head(width))
        super().__init__(*layers)
        self.head_start = head_start
