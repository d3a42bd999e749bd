"""The one-step SD UNet generator: SD1.5's UNet called once on a codec's features, predicting the clean latent.

    features (codec output, C x H/8 x W/8) --conv_in--> SD UNet at t = 999, cross-attending to `context`
                                                           -> eps
    x_t = vae_reduction(features)                          (the learned stand-in for the noisy latent)
    latent = (x_t - sqrt(1 - abar) eps) / sqrt(abar)       (float64, returned as float32)

The architecture is SD1.5's UNet (`configs/sd15_unet.json`) with `in_channels` set to the feature width,
so diffusers builds the new conv_in; any smaller UNet config works the same. Cross-attention reads the
codec's context tokens directly (their width must equal `cross_attention_dim`: no projection).

Other one-step methods plug in here (osdiff-sodec.md §4):
- SODEC feeds the transformation module's 4-channel output as x_t itself: `x_t="features"` with
  `feature_channels` equal to the latent channels, keeping SD's own conv_in.
- OSDiff's control module adds residuals inside the UNet: a subclass overrides `unet_kwargs` to return
  diffusers' `down_block_additional_residuals` / `mid_block_additional_residual`.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from ..errors import ConfigError
from ..nn.precision import cast_inputs, to_compute_dtype
from .base import Generator
from .lora import LoRALayer, add_lora, lora_parameters, merge_lora
from .schedule import alpha_bar, x0_from_epsilon

X_T_SOURCES = ("reduction", "features")

# The test-size UNet: two levels, one layer each, SD1.5's layout otherwise.
TINY_UNET: dict[str, Any] = {
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 8,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
}


def sd15_unet_config() -> dict[str, Any]:
    """SD1.5's UNet2DConditionModel config, shipped with the package (no hub access)."""
    text = resources.files("onestep").joinpath("configs/sd15_unet.json").read_text()
    return json.loads(text)


class ReductionBlock(nn.Module):
    """`reduce_resblock`: a GN-SiLU-conv residual stack from the features to the latent width. Its GroupNorms
    use eps 1e-6 as the reference's (not PyTorch's 1e-5: that alone moves x0 by about 1e-3)."""

    norm_eps = 1e-6

    def __init__(self, channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            nn.GroupNorm(groups, channels, eps=self.norm_eps),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels, eps=self.norm_eps),
            nn.SiLU(),
            nn.Conv2d(channels, out_channels, 3, padding=1),
        )
        self.short_cut = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x) + self.short_cut(x)


class OneStepUNet(Generator):
    """SD UNet called once at a fixed timestep; predicts the autoencoder's (scaled) latent.

    `unet`: overrides of the SD1.5 config (e.g. smaller widths for tests). `feature_channels`: width of the
    codec features (the UNet's input). `lora_rank` 0 means no adapters (e.g. a merged model)."""

    def __init__(
        self,
        unet: dict[str, Any] | None = None,
        feature_channels: int = 320,
        x_t: str = "reduction",
        timestep: int = 999,
        lora_rank: int = 64,
        lora_alpha: float = 8.0,
    ) -> None:
        super().__init__()
        overrides = dict(unet or {})
        if "in_channels" in overrides:
            raise ConfigError("set the UNet's input width with feature_channels, not unet.in_channels")
        if not 0 <= timestep < 1000:
            raise ConfigError(f"timestep must be in 0..999 (SD's training schedule), got {timestep}")
        if x_t not in X_T_SOURCES:
            raise ConfigError(f"x_t must be one of {', '.join(X_T_SOURCES)}, not {x_t!r}")
        config = {**sd15_unet_config(), **overrides, "in_channels": feature_channels}
        if x_t == "features" and feature_channels != config["out_channels"]:
            raise ConfigError(f"x_t='features' needs feature_channels == {config['out_channels']} (the latent width)")
        try:
            self.unet = UNet2DConditionModel(**config)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"invalid UNet config: {e}") from None
        self.latent_channels = int(config["out_channels"])
        self.context_dim = int(config["cross_attention_dim"])
        self.timestep = timestep
        self.abar = alpha_bar(timestep)
        self.x_t_source = x_t
        if x_t == "reduction":
            self.vae_reduction: nn.Module | None = ReductionBlock(
                feature_channels, self.latent_channels, int(config["norm_num_groups"])
            )
        else:
            self.vae_reduction = None
        if lora_rank:
            add_lora(self.unet, lora_rank, lora_alpha)
            self._freeze_base()

    def _freeze_base(self) -> None:
        """Stage I trains the new conv_in, vae_reduction and the adapters; the SD base stays frozen.
        Trainers read these flags."""
        self.requires_grad_(False)
        for p in (*self.unet.conv_in.parameters(), *lora_parameters(self.unet)):
            p.requires_grad_(True)
        if self.vae_reduction is not None:
            self.vae_reduction.requires_grad_(True)

    @classmethod
    def tiny(cls, feature_channels: int = 32, lora_rank: int = 4) -> OneStepUNet:
        """A few-hundred-thousand-parameter UNet of the same layout, for tests."""
        return cls(unet=dict(TINY_UNET), feature_channels=feature_channels, lora_rank=lora_rank)

    def noisy_latent(self, features: torch.Tensor) -> torch.Tensor:
        """What plays x_t in the x0 formula."""
        return self.vae_reduction(features) if self.vae_reduction is not None else features

    def unet_kwargs(self, features: torch.Tensor, x_t: torch.Tensor, context: torch.Tensor) -> dict[str, Any]:
        """Extra UNet inputs (control residuals) for subclasses; none for the plain UNet."""
        return {}

    def forward(self, features: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            raise ValueError("OneStepUNet needs cross-attention context tokens (B x tokens x D)")
        if context.dim() != 3 or context.shape[-1] != self.context_dim:
            raise ValueError(f"context must be B x tokens x {self.context_dim}, got {tuple(context.shape)}")
        x_t = self.noisy_latent(features)
        t = torch.full((features.shape[0],), self.timestep, dtype=torch.long, device=features.device)
        extra = self.unet_kwargs(features, x_t, context)
        context = context.to(self.unet.time_embedding.linear_1.weight.dtype)  # float32, or set_compute_dtype's
        epsilon = self.unet(features, t, encoder_hidden_states=context, return_dict=False, **extra)[0]
        return x0_from_epsilon(x_t, epsilon, self.abar)

    def set_compute_dtype(self, dtype: torch.dtype) -> None:
        """The UNet in `dtype` (bfloat16: `nn.precision`), its output head in float32: x0 amplifies epsilon's
        error about 15 times at t = 999. `vae_reduction` (x_t, amplified the same way) stays float32."""
        if dtype == torch.float32:
            return
        unet = self.unet
        to_compute_dtype(unet, dtype, [(unet.conv_in, dtype), (unet.conv_norm_out, None), (unet.conv_out, None)])
        cast_inputs(unet.time_embedding, dtype)  # the timestep's embedding is made in the input's float32

    def merge_lora(self) -> int:
        """Fold the adapters into the base weights for inference; the config then says lora_rank 0, so
        `save_pretrained` writes a model that `from_pretrained` rebuilds without adapters."""
        count = merge_lora(self.unet)
        self.config = {**self.config, "lora_rank": 0}
        return count

    @property
    def has_lora(self) -> bool:
        return any(isinstance(m, LoRALayer) for m in self.unet.modules())
