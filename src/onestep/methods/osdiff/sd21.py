"""Stable Diffusion 2.1-base: the UNet config (diffusers names, shipped here so nothing reads the hub), the
`tiny` stand-in for tests, and the schedule's abar as the reference's ldm code computes it.

The values are those of `stabilityai/stable-diffusion-2-1-base/unet/config.json`, which describe the ldm
`unet_config` of the reference's `configs/model/osdiff.yaml` (model_channels 320, mult 1/2/4/4, heads of 64
channels, context 1024, linear proj_in/proj_out). diffusers calls the number of heads `attention_head_dim`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

SD21_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-05,
    "cross_attention_dim": 1024,
    "attention_head_dim": [5, 10, 20, 20],
    "use_linear_projection": True,
    "upcast_attention": False,
}
SD21_HEAD_CHANNELS = 64  # channels per attention head (ldm's num_head_channels)

# Test size: the same layout (four levels, attention on the first three, two layers a level) at small widths.
TINY_UNET: dict[str, Any] = {
    **SD21_UNET,
    "block_out_channels": [32, 64, 64, 64],
    "layers_per_block": 2,
    "norm_num_groups": 8,
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 4, 4, 4],
}
TINY_HEAD_CHANNELS = 16


def unet_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**SD21_UNET, **(overrides or {})}


def ldm_alpha_bar(t: int, beta_start: float = 0.00085, beta_end: float = 0.012, steps: int = 1000) -> float:
    """abar_t as the reference's one-step sampler uses it: ldm's "linear" schedule (linear in sqrt(beta))
    computed in float64 (`make_beta_schedule` + numpy cumprod), where diffusers builds the same schedule in
    float32 (`generators.schedule`). At t = 999 the two differ by about 1e-7 relative."""
    if not 0 <= t < steps:
        raise ValueError(f"timestep {t} is outside the schedule's 0..{steps - 1}")
    betas = torch.linspace(math.sqrt(beta_start), math.sqrt(beta_end), steps, dtype=torch.float64, device="cpu") ** 2
    return float(torch.cumprod(1.0 - betas, dim=0)[t])
