"""Score networks for stage II: a diffusers UNet2DConditionModel as a denoiser (noise schedule, x0 from
its prediction), its encoder + mid-block features, and the DMD2 classifier head on those features."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from ..errors import ConfigError, ModelError
from ..generators.schedule import scaled_linear_alphas_cumprod

PREDICTIONS = ("epsilon", "v_prediction")


def load_unet(folder: str | Path) -> UNet2DConditionModel:
    """A diffusers UNet2DConditionModel folder (config.json + diffusion_pytorch_model.safetensors)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder} is not a diffusers UNet folder: config.json is missing")
    try:
        return UNet2DConditionModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"cannot load the UNet in {folder}: {e}") from None


class Denoiser(nn.Module):
    """Wraps a UNet with its noise schedule: `add_noise`, `x0` from a prediction, the training target."""

    def __init__(
        self, unet: UNet2DConditionModel, prediction: str, beta_start: float, beta_end: float, timesteps: int
    ) -> None:
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ConfigError(f"prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}")
        self.unet, self.prediction = unet, prediction
        alphas = scaled_linear_alphas_cumprod(beta_start, beta_end, timesteps).clone()
        self.register_buffer("alphas_cumprod", alphas, persistent=False)

    @property
    def timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    def _coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        abar = self.alphas_cumprod.to(torch.float64)[t].view(-1, 1, 1, 1)
        return abar.sqrt(), (1 - abar).sqrt()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = self._coefficients(t)
        return (a * x0.double() + s * noise.double()).to(x0.dtype)

    def x0(self, x_t: torch.Tensor, prediction: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Clean-latent estimate, computed in float64 (as the reference) and returned in float32."""
        a, s = self._coefficients(t)
        x_t, prediction = x_t.double(), prediction.double()
        x0 = a * x_t - s * prediction if self.prediction == "v_prediction" else (x_t - s * prediction) / a
        return x0.float()

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction == "epsilon":
            return noise
        a, s = self._coefficients(t)
        return (a * noise.double() - s * x0.double()).to(x0.dtype)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t, encoder_hidden_states=context, return_dict=False)[0]

    def mid_features(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The UNet's encoder and mid block only (DMD2's `classify_forward`): the deepest feature map."""
        unet = self.unet
        emb = unet.time_embedding(unet.get_time_embed(sample=x_t, timestep=t).to(x_t.dtype))
        h = unet.conv_in(x_t)
        for block in unet.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, _ = block(hidden_states=h, temb=emb, encoder_hidden_states=context)
            else:
                h, _ = block(hidden_states=h, temb=emb)
        if unet.mid_block is not None:
            h = unet.mid_block(h, emb, encoder_hidden_states=context)
        return h


class ClassifierHead(nn.Module):
    """DMD2's `cls_pred_branch` on the mid features: conv 4x4/2, GN, SiLU, conv 4x4/4, GN, SiLU, conv 1x1 -> 1
    logit per position. `downsample=False` uses 3x3 stride-1 convs instead, for feature maps smaller than 8."""

    def __init__(self, channels: int, downsample: bool = True) -> None:
        super().__init__()
        groups = math.gcd(32, channels)
        first, second = (
            (nn.Conv2d(channels, channels, 4, 2, 1), nn.Conv2d(channels, channels, 4, 4, 0))
            if downsample
            else (nn.Conv2d(channels, channels, 3, 1, 1), nn.Conv2d(channels, channels, 3, 1, 1))
        )
        self.layers = nn.Sequential(
            first,
            nn.GroupNorm(groups, channels),
            nn.SiLU(),
            second,
            nn.GroupNorm(groups, channels),
            nn.SiLU(),
            nn.Conv2d(channels, 1, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
