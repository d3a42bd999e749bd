"""SD UNet pieces in diffusers' names, walked block by block as ldm's `input_blocks` / `output_blocks` are.

OSDiff's control module adds its features to the base UNet's hidden state after every ldm input block and
before every output block (not only to the skip connections, as diffusers' ControlNet residuals do), so the
controlled UNet cannot be one `UNet2DConditionModel.forward` call: it walks the blocks with these helpers.

    ldm input_blocks[0]            conv_in
    ldm input_blocks[1 + 3l + j]   down_blocks[l].resnets[j] (+ .attentions[j]),  j < layers
    ldm input_blocks[3l + 3]       down_blocks[l].downsamplers[0]                (not the last level)
    ldm middle_block               mid_block
    ldm output_blocks[3l + j]      up_blocks[l].resnets[j] (+ .attentions[j]) (+ .upsamplers[0] after the last)

`UNetEncoder` is conv_in + time embedding + down blocks + mid block: the control module's and the latent
discriminator's backbone (ldm's `ControlModule` and `UNetModel_Bottleneck`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2DCrossAttn, get_down_block
from torch import nn

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _resnet_attention(resnet: nn.Module, attention: nn.Module | None) -> Step:
    def step(h: torch.Tensor, temb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = resnet(h, temb)
        if attention is not None:
            h = attention(h, encoder_hidden_states=context, return_dict=False)[0]
        return h

    return step


def _downsample(downsampler: nn.Module) -> Step:
    return lambda h, temb, context: downsampler(h)


def input_block_steps(down_blocks: nn.ModuleList) -> list[Step]:
    """ldm's input blocks 1.. (after conv_in) as callables (h, temb, context) -> h."""
    steps: list[Step] = []
    for block in down_blocks:
        attentions = getattr(block, "attentions", None)
        for j, resnet in enumerate(block.resnets):
            steps.append(_resnet_attention(resnet, attentions[j] if attentions is not None else None))
        if block.downsamplers is not None:
            steps.append(_downsample(block.downsamplers[0]))
    return steps


def output_block_steps(up_blocks: nn.ModuleList) -> list[Callable[..., torch.Tensor]]:
    """ldm's output blocks as callables (h, skip, temb, context) -> h."""
    steps: list[Callable[..., torch.Tensor]] = []
    for block in up_blocks:
        attentions = getattr(block, "attentions", None)
        last = len(block.resnets) - 1
        for j, resnet in enumerate(block.resnets):
            inner = _resnet_attention(resnet, attentions[j] if attentions is not None else None)
            upsampler = block.upsamplers[0] if block.upsamplers is not None and j == last else None

            def step(h: torch.Tensor, skip: torch.Tensor, temb: torch.Tensor, context: torch.Tensor,
                     inner: Step = inner, upsampler: nn.Module | None = upsampler) -> torch.Tensor:  # fmt: skip
                h = inner(torch.cat([h, skip], dim=1), temb, context)
                return upsampler(h) if upsampler is not None else h

            steps.append(step)
    return steps


class UNetEncoder(nn.Module):
    """An SD UNet's encoder half (diffusers names: conv_in, time_embedding, down_blocks, mid_block).

    `time_channels` is the sinusoidal embedding's width, 4x that the time-embedding width; it need not be
    `widths[0]` (the 0.2-width control module keeps the base UNet's 320 -> 1280 time embedding)."""

    def __init__(
        self,
        in_channels: int,
        widths: list[int],
        down_block_types: list[str],
        layers_per_block: int,
        head_channels: int,
        cross_attention_dim: int,
        norm_num_groups: int,
        time_channels: int,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        time_dim = 4 * time_channels
        self.time_proj = Timesteps(time_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(time_channels, time_dim)
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        previous = widths[0]
        for level, (kind, width) in enumerate(zip(down_block_types, widths, strict=True)):
            self.down_blocks.append(
                get_down_block(
                    kind,
                    num_layers=layers_per_block,
                    in_channels=previous,
                    out_channels=width,
                    temb_channels=time_dim,
                    add_downsample=level < len(widths) - 1,
                    resnet_eps=norm_eps,
                    resnet_act_fn="silu",
                    resnet_groups=norm_num_groups,
                    cross_attention_dim=cross_attention_dim,
                    num_attention_heads=width // head_channels,
                    attention_head_dim=head_channels,
                    downsample_padding=1,
                    use_linear_projection=True,
                )
            )
            previous = width
        self.mid_block = UNetMidBlock2DCrossAttn(
            in_channels=widths[-1],
            temb_channels=time_dim,
            resnet_eps=norm_eps,
            resnet_act_fn="silu",
            resnet_groups=norm_num_groups,
            num_attention_heads=widths[-1] // head_channels,
            cross_attention_dim=cross_attention_dim,
            use_linear_projection=True,
        )
        self.out_channels = widths[-1]

    @classmethod
    def of_unet(cls, config: dict[str, Any], head_channels: int, **overrides: Any) -> UNetEncoder:
        """The encoder half of a UNet2DConditionModel config (the discriminator's backbone)."""
        arguments: dict[str, Any] = dict(
            in_channels=config["in_channels"],
            widths=list(config["block_out_channels"]),
            down_block_types=list(config["down_block_types"]),
            layers_per_block=config["layers_per_block"],
            head_channels=head_channels,
            cross_attention_dim=config["cross_attention_dim"],
            norm_num_groups=config["norm_num_groups"],
            time_channels=config["block_out_channels"][0],
            norm_eps=config["norm_eps"],
        )
        return cls(**{**arguments, **overrides})

    def embed_time(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return self.time_embedding(self.time_proj(t).to(dtype))

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        temb = self.embed_time(t, x.dtype)
        h = self.conv_in(x)
        for step in input_block_steps(self.down_blocks):
            h = step(h, temb, context)
        return self.mid_block(h, temb, encoder_hidden_states=context)
