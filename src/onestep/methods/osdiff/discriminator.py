"""OSDiff's latent discriminator (reference `GuidanceModel`, digest §1.6): a full-width SD UNet encoder +
middle block (initialised from SD-2.1, all trainable) and DMD2's conv head, on latents noised to a random t.

    features = UNetEncoder(x_t, t, empty-prompt context)          1280 x h/8 x w/8
    logit    = head(pool_8x8(features))                           conv4x4 s2 -> GN -> SiLU -> conv4x4 s4 -> GN
                                                                  -> SiLU -> conv1x1: one logit per image

The reference's head assumes 512 x 512 crops (an 8 x 8 feature map) and fails at any other size; here the
features are first average-pooled to 8 x 8 (`adaptive_avg_pool2d`, the identity at 512), so any crop whose
latent is a multiple of 8 works. Losses (non-saturating, as the paper's Eq. 12 and 14):
    discriminator: softplus(D(fake_t)) + softplus(-D(real_t)), fake detached, same t and noise for both
    generator:     softplus(-D(fake_t)) with D's weights frozen but the graph kept, so the gradient reaches
                   the generator (the released code computes it under no_grad: its lambda_4 term does nothing).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...generators.schedule import scaled_linear_alphas_cumprod
from ...modeling import ModelMixin
from .sd21 import SD21_HEAD_CHANNELS, unet_config
from .unet_blocks import UNetEncoder

HEAD_INPUT = 8  # the head's input side: an 8 x 8 map, as a 512-pixel crop gives


class LatentDiscriminator(ModelMixin):
    def __init__(self, unet: dict[str, Any] | None = None, head_channels: int = SD21_HEAD_CHANNELS) -> None:
        super().__init__()
        config = unet_config(unet)
        self.backbone = UNetEncoder.of_unet(config, head_channels)
        width, groups = self.backbone.out_channels, int(config["norm_num_groups"])
        self.head = nn.Sequential(
            nn.Conv2d(width, width, 4, stride=2, padding=1),
            nn.GroupNorm(groups, width),
            nn.SiLU(),
            nn.Conv2d(width, width, 4, stride=4),
            nn.GroupNorm(groups, width),
            nn.SiLU(),
            nn.Conv2d(width, 1, 1),
        )

    def forward(self, noisy_latent: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """B logits."""
        features = self.backbone(noisy_latent, t, context).float()
        if features.shape[-2:] != (HEAD_INPUT, HEAD_INPUT):
            features = F.adaptive_avg_pool2d(features, HEAD_INPUT)
        return self.head(features).flatten(1).squeeze(1)


def q_sample(latent: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """sqrt(abar_t) latent + sqrt(1 - abar_t) noise, per batch item."""
    abar = scaled_linear_alphas_cumprod().to(latent.device)[t].view(-1, 1, 1, 1)
    return abar.sqrt() * latent + (1 - abar).sqrt() * noise


def noised_pair(
    real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(real_t, fake_t, t): both noised with the same t ~ U{0..999} and the same noise, as the reference."""
    t = torch.randint(0, 1000, (real.shape[0],), device=real.device, generator=generator)
    noise = torch.randn(real.shape, device=real.device, generator=generator, dtype=real.dtype)
    return q_sample(real, t, noise), q_sample(fake, t, noise), t


def discriminator_loss(fake_logits: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean()
