"""OSDiff's generator: the frozen SD-2.1 UNet steered by a trainable 0.2-width control module.

    features = [y_T ++ c_latent]  (8 channels: the noise the stream's seed draws, the codec's latent)
    control  = UNetEncoder(8 -> 64/128/256/256, heads of 16 channels, the base's 320 -> 1280 time embedding)
    base     = SD-2.1 UNet2DConditionModel on y_T at t = 999, cross-attending to the empty-prompt embedding

After every ldm input block i the base hidden state gets `enc_zero_convs[i](control_i)`; after the middle
block `mid_zero_conv(control_mid)`; before output block i (before the skip concat) `dec_zero_convs[i]` of
the control features of input block 11 - i (`dec_zero_convs[0]` reads the control middle block's input).
Every injection is a 1x1 conv initialised to zero, scaled by `control_scale` (the reference's `scale_list`,
all 1.0). x0 = (y_T - sqrt(1 - abar) eps) / sqrt(abar) in float64, with the reference's float64 abar_999.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from ...errors import ConfigError
from ...generators.base import Generator
from ...generators.schedule import x0_from_epsilon
from .sd21 import SD21_HEAD_CHANNELS, ldm_alpha_bar, unet_config
from .unet_blocks import UNetEncoder, input_block_steps, output_block_steps


def _zero_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def input_block_channels(widths: list[int], layers_per_block: int) -> list[int]:
    """Output channels of ldm's input blocks 0..: conv_in, then per level `layers` blocks and a downsampler."""
    channels = [widths[0]]
    for level, width in enumerate(widths):
        channels += [width] * layers_per_block
        if level < len(widths) - 1:
            channels.append(width)
    return channels


def output_block_channels(widths: list[int], layers_per_block: int) -> list[int]:
    """Output channels of ldm's output blocks (the decoder runs the levels widest-first)."""
    return [width for width in reversed(widths) for _ in range(layers_per_block + 1)]


class ControlModule(nn.Module):
    """ldm `CDDM` minus the base UNet: the narrow encoder copy and the zero convs into the base."""

    def __init__(self, base: dict[str, Any], ratio: float, head_channels: int, scale: float) -> None:
        super().__init__()
        base_widths = list(base["block_out_channels"])
        widths = [int(w * ratio) for w in base_widths]
        layers = int(base["layers_per_block"])
        self.encoder = UNetEncoder(
            in_channels=2 * base["in_channels"],
            widths=widths,
            down_block_types=list(base["down_block_types"]),
            layers_per_block=layers,
            head_channels=head_channels,
            cross_attention_dim=base["cross_attention_dim"],
            norm_num_groups=base["norm_num_groups"],
            time_channels=base_widths[0],
            norm_eps=base["norm_eps"],
        )
        ctr = input_block_channels(widths, layers)
        enc = input_block_channels(base_widths, layers)
        dec = output_block_channels(base_widths, layers)
        self.enc_zero_convs = nn.ModuleList(_zero_conv(c, b) for c, b in zip(ctr, enc, strict=True))
        self.mid_zero_conv = _zero_conv(widths[-1], base_widths[-1])
        # decoder block i reads control block 11 - i; block 0's input has the base middle block's width
        self.dec_zero_convs = nn.ModuleList(
            _zero_conv(c, b) for c, b in zip(reversed(ctr), [base_widths[-1], *dec[:-1]], strict=True)
        )
        self.scale = scale


class OSDiffGenerator(Generator):
    """`features`: B x 8 x h x w, the noise y_T then c_latent; returns x0 (B x 4 x h x w, float32).

    The SD UNet is frozen (requires_grad False); the control module trains."""

    def __init__(
        self,
        unet: dict[str, Any] | None = None,
        head_channels: int = SD21_HEAD_CHANNELS,
        control_ratio: float = 0.2,
        control_head_channels: int = 16,
        control_scale: float = 1.0,
        timestep: int = 999,
    ) -> None:
        super().__init__()
        config = unet_config(unet)
        if not 0 <= timestep < 1000:
            raise ConfigError(f"timestep must be in 0..999 (SD's training schedule), got {timestep}")
        if not 0 < control_ratio <= 1:
            raise ConfigError(f"control_ratio must be in (0, 1], got {control_ratio}")
        try:
            self.unet = UNet2DConditionModel(**config)
            self.control = ControlModule(config, control_ratio, control_head_channels, control_scale)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"invalid OSDiff UNet config: {e}") from None
        if any(w * control_ratio % 1 for w in config["block_out_channels"]):
            raise ConfigError(
                f"control_ratio {control_ratio} does not give whole widths for {config['block_out_channels']}"
            )
        self.latent_channels = int(config["out_channels"])
        self.context_dim = int(config["cross_attention_dim"])
        self.timestep = timestep
        self.abar = ldm_alpha_bar(timestep)
        self.unet.requires_grad_(False)

    def epsilon(self, x_t: torch.Tensor, hint: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The controlled UNet's noise prediction at `self.timestep` (ldm `CDDM.forward`)."""
        base, control = self.unet, self.control
        t = torch.full((x_t.shape[0],), self.timestep, dtype=torch.long, device=x_t.device)
        t_proj = base.time_proj(t).to(x_t.dtype)
        emb_base = base.time_embedding(t_proj)
        emb_ctr = control.encoder.time_embedding(t_proj)
        scale = control.scale

        h = base.conv_in(x_t)
        c = control.encoder.conv_in(torch.cat([x_t, hint], dim=1))
        h = h + control.enc_zero_convs[0](c) * scale
        hs, cs = [h], [c]
        base_steps = input_block_steps(base.down_blocks)
        control_steps = input_block_steps(control.encoder.down_blocks)
        for i, (base_step, control_step) in enumerate(zip(base_steps, control_steps, strict=True), start=1):
            h = base_step(h, emb_base, context)
            c = control_step(c, emb_ctr, context)
            h = h + control.enc_zero_convs[i](c) * scale
            hs.append(h)
            cs.append(c)
        h = base.mid_block(h, emb_base, encoder_hidden_states=context)
        c = control.encoder.mid_block(c, emb_ctr, encoder_hidden_states=context)
        h = h + control.mid_zero_conv(c) * scale
        for zero_conv, step in zip(control.dec_zero_convs, output_block_steps(base.up_blocks), strict=True):
            h = h + zero_conv(cs.pop()) * scale
            h = step(h, hs.pop(), emb_base, context)
        h = base.conv_norm_out(h)
        return base.conv_out(base.conv_act(h))

    def forward(self, features: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None or context.dim() != 3 or context.shape[-1] != self.context_dim:
            shape = None if context is None else tuple(context.shape)
            raise ValueError(f"OSDiff needs context tokens B x 77 x {self.context_dim}, got {shape}")
        if features.shape[1] != 2 * self.latent_channels:
            raise ValueError(
                f"features must be y_T ++ c_latent ({2 * self.latent_channels} channels), got {features.shape[1]}"
            )
        x_t, hint = features.split(self.latent_channels, dim=1)
        return x0_from_epsilon(x_t, self.epsilon(x_t, hint, context), self.abar)

    @torch.no_grad()
    def init_control_from_unet(self) -> int:
        """Seed the control module from the base UNet, as the reference's `sync_control_weights_from_base_
        checkpoint` does: same-named tensors copied, narrower ones cut to the first rows/columns of the
        base tensor tiled twice along dim 1 (so the 8-channel conv_in repeats the 4 latent channels).
        Returns the number of tensors set; the zero convs stay zero."""
        base = self.unet.state_dict()
        count = 0
        for name, target in self.control.encoder.state_dict().items():
            source = base.get(name)
            if source is None:
                continue
            if source.shape != target.shape:
                dim = 0 if source.dim() == 1 else 1
                source = torch.cat([source, source], dim=dim)[tuple(slice(0, n) for n in target.shape)]
            target.copy_(source)
            count += 1
        return count
