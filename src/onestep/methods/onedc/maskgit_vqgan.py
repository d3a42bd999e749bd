"""The MaskGIT VQGAN tokenizer's encoder and quantizer (open-muse `maskgit-vqgan-imagenet-f16-256`),
the frozen target of OneDC's semantic distillation (digest §5.9).

Only the encoder and the codebook are built: distillation needs the codes, not the decoder. Layout:
TF-"same"-padded convs; conv_in 3 -> 128 (no bias); five levels of 2 ResnetBlocks (128, 128, 256,
256, 512 channels), a 2x average pool after the first four; 2 mid ResnetBlocks; GN, SiLU, 1x1 conv
to 256; nearest-code (squared L2) quantisation over 1024 codes. Input in [0, 1]. The ResnetBlock has
the reference quirk: the 1x1 shortcut is applied to the block's output, not its input.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelError
from ...modeling import load_state_dict_strict


class Conv2dSame(nn.Conv2d):
    """TensorFlow 'SAME' padding: pad so that the output size is ceil(input / stride)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(32, in_channels, eps=1e-6)
        self.conv1 = Conv2dSame(in_channels, out_channels, 3, bias=False)
        self.norm2 = nn.GroupNorm(32, out_channels, eps=1e-6)
        self.conv2 = Conv2dSame(out_channels, out_channels, 3, bias=False)
        self.nin_shortcut = (
            Conv2dSame(out_channels, out_channels, 1, bias=False) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (x if self.nin_shortcut is None else self.nin_shortcut(h))


class DownBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, blocks: int, downsample: bool) -> None:
        super().__init__()
        self.block = nn.ModuleList(
            ResnetBlock(in_channels if i == 0 else out_channels, out_channels) for i in range(blocks)
        )
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block:
            x = block(x)
        return F.avg_pool2d(x, 2) if self.downsample else x


class MidBlock(nn.Module):
    def __init__(self, channels: int, blocks: int) -> None:
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(channels, channels) for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block:
            x = block(x)
        return x


class Encoder(nn.Module):
    def __init__(self, hidden: int, channel_mult: tuple[int, ...], res_blocks: int, z_channels: int) -> None:
        super().__init__()
        self.conv_in = Conv2dSame(3, hidden, 3, bias=False)
        widths = [hidden * m for m in (1, *channel_mult)]
        levels = len(channel_mult)
        self.down = nn.ModuleList(
            DownBlock(widths[i], widths[i + 1], res_blocks, downsample=i < levels - 1) for i in range(levels)
        )
        self.mid = MidBlock(widths[-1], res_blocks)
        self.norm_out = nn.GroupNorm(32, widths[-1], eps=1e-6)
        self.conv_out = Conv2dSame(widths[-1], z_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down:
            x = block(x)
        return self.conv_out(F.silu(self.norm_out(self.mid(x))))


class Quantizer(nn.Module):
    def __init__(self, codes: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(codes, dim)


class MaskGitVQGANTokenizer(nn.Module):
    """Images in [-1, 1] -> (code indices B x h x w, quantised latent B x D x h x w), h = H/16."""

    def __init__(
        self,
        hidden: int = 128,
        channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4),
        res_blocks: int = 2,
        z_channels: int = 256,
        codes: int = 1024,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(hidden, tuple(channel_mult), res_blocks, z_channels)
        self.quantize = Quantizer(codes, z_channels)

    @property
    def codebook(self) -> torch.Tensor:
        return self.quantize.embedding.weight

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(image * 0.5 + 0.5).float()
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        codebook = self.codebook.float()
        distances = flat.square().sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.square().sum(1)[None]
        indices = distances.argmin(1).view(z.shape[0], *z.shape[2:])
        return indices, codebook[indices].permute(0, 3, 1, 2)

    @classmethod
    def from_file(cls, path: str | Path) -> MaskGitVQGANTokenizer:
        """Load `maskgit-vqgan-imagenet-f16-256` weights (safetensors or a plain torch state dict); the
        decoder's tensors in the file are ignored, the encoder's and codebook's must all fit."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"VQGAN weights {path} not found")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # damaged or unsafe files raise many types
            raise ModelError(f"cannot read VQGAN weights {path}: {e}") from None
        state = {k: v for k, v in state.items() if k.startswith(("encoder.", "quantize.embedding."))}
        model = cls()
        load_state_dict_strict(model, state, source=str(path))
        return model.eval().requires_grad_(False)
