"""SODEC as a OneStepPipeline:

    SODECDiffusionDecoder   D_m: the SD-2.1 VAE's decoder alone, frozen (SODEC never uses the VAE encoder)
    SODECCodec              the HiFiC compression module on pixels + H_s + T_s (codec.py)
    FidelityGuidance        D_a + frozen F + F_p -> 77 x 1024 cross-attention tokens (guidance.py)
    OneStepUNet             SD-2.1-base UNet, LoRA (rank 16) in all blocks, one call at t = 999 on T_s's output
                            as x_t (`x_t="features"`: no noise is added), x0 from epsilon; the base and its
                            conv_in are frozen: the adapters alone train

`sodec_full()` is the paper's scale with random weights (no weights were ever released); `sodec_tiny()` keeps
every structural feature at test size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ...autoencoders.kl import KLAutoencoder
from ...autoencoders.space_to_depth import SpaceToDepth
from ...generators.unet import OneStepUNet
from ..osdiff.sd21 import SD21_UNET, TINY_UNET
from ..pipeline import OneStepPipeline
from .codec import SODECCodec
from .guidance import FidelityGuidance

NAME = "sodec"
LORA_RANK = 16  # OSCAR's default (the authors' one-step recipe, digest §2.1); the paper does not give it
LORA_ALPHA = 16.0


class SODECDiffusionDecoder(KLAutoencoder):
    """D_m: the SD VAE's decoder (its encoder and quant_conv removed: SODEC codes pixels). The pipeline's
    encode step still runs before the codec; here it only pools the image to the latent grid, at no cost,
    and the codec reads the image itself. SD VAE weights load with `model.init` (prefix `autoencoder.vae.`;
    the encoder's tensors are skipped as not in the model)."""

    def __init__(
        self,
        block_out_channels: tuple[int, ...] = (128, 256, 512, 512),
        layers_per_block: int = 2,
        norm_num_groups: int = 32,
        scaling_factor: float = 0.18215,
        attention_window: int | None = None,
    ) -> None:
        super().__init__(
            block_out_channels=block_out_channels, layers_per_block=layers_per_block, norm_num_groups=norm_num_groups,
            scaling_factor=scaling_factor, attention_window=attention_window,
        )  # fmt: skip
        del self.vae.encoder, self.vae.quant_conv
        self.vae.quant_conv = None

    @classmethod
    def tiny(cls, **overrides: Any) -> SODECDiffusionDecoder:
        config: dict[str, Any] = dict(block_out_channels=(16, 16, 32, 32), layers_per_block=1, norm_num_groups=8)
        return cls(**{**config, **overrides})

    def encode(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.avg_pool2d(image, self.downsampling)


def sodec_generator(unet: dict[str, Any], lora_rank: int) -> OneStepUNet:
    config = {k: v for k, v in unet.items() if k != "in_channels"}
    generator = OneStepUNet(unet=config, feature_channels=4, x_t="features", lora_rank=lora_rank, lora_alpha=LORA_ALPHA)
    generator.unet.conv_in.requires_grad_(False)  # T_s already speaks the SD latent: SD's own conv_in stays
    return generator


def sodec_full(
    name: str = NAME, lora_rank: int = LORA_RANK, backbone: str = "efficientnet-lite0", guidance: str = "fidelity"
) -> OneStepPipeline:
    """The paper's scale; parameters by part in `part_parameters` (and tests/test_sodec.py)."""
    codec = SODECCodec()
    conditioner = FidelityGuidance(backbone=backbone, guidance=guidance)
    generator = sodec_generator(SD21_UNET, lora_rank)
    autoencoder = SODECDiffusionDecoder()
    return OneStepPipeline(autoencoder, codec, generator, name=name, conditioner=conditioner)


def sodec_tiny(name: str = f"{NAME}-tiny", lora_rank: int = 4, guidance: str = "fidelity") -> OneStepPipeline:
    """Random weights, small widths, the same structure: for tests."""
    codec = SODECCodec.tiny()
    conditioner = FidelityGuidance(
        y_channels=16, widths=(8, 8, 16, 16, 32), residual_blocks=2, backbone="tiny", input_size=64,
        context_dim=TINY_UNET["cross_attention_dim"], heads=4, guidance=guidance,
    )  # fmt: skip
    generator = sodec_generator(TINY_UNET, lora_rank)
    autoencoder = SODECDiffusionDecoder.tiny()
    return OneStepPipeline(autoencoder, codec, generator, name=name, conditioner=conditioner)


# `small`: trainable on a CPU in an hour, for the guidance ablation (`ablation.py`). Such a machine has no SD
# weights, and even the smallest pretrained decoder (TAEF2) costs more than the rest of a training step together,
# so D_m is the exact, parameter-free SpaceToDepth(8): the UNet predicts the image's 8 x 8 pixel blocks
# (192 channels at /8) in one call at t = 999 with x0 from epsilon, a small SD-layout UNet trained in full.
SMALL_UNET: dict[str, Any] = {
    "block_out_channels": [64, 128, 128],
    "layers_per_block": 1,
    "norm_num_groups": 16,
    "cross_attention_dim": 64,
    "attention_head_dim": [2, 4, 4],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "out_channels": 192,
}


def sodec_small(name: str = f"{NAME}-small", guidance: str = "fidelity") -> OneStepPipeline:
    """About 13M parameters; F is ImageNet EfficientNet-Lite0 (its weights loaded by the training task)."""
    widths = (8, 16, 32, 64, 128)
    codec = SODECCodec(
        encoder_widths=widths, y_channels=64, z_channels=64, w_channels=64, transform_width=64, latent_channels=192
    )
    conditioner = FidelityGuidance(
        y_channels=64, widths=widths, residual_blocks=3, input_size=128, context_dim=64, heads=4, guidance=guidance
    )
    generator = OneStepUNet(unet=SMALL_UNET, feature_channels=192, x_t="features", lora_rank=0)
    return OneStepPipeline(SpaceToDepth(8), codec, generator, name=name, conditioner=conditioner)


def part_parameters(pipeline: OneStepPipeline) -> dict[str, int]:
    """Parameter counts of SODEC's parts, by the paper's names."""
    codec, guidance, unet = pipeline.codec, pipeline.conditioner, pipeline.generator
    assert isinstance(codec, SODECCodec) and isinstance(guidance, FidelityGuidance)

    def count(*modules: torch.nn.Module) -> int:
        return sum(p.numel() for m in modules for p in m.parameters())

    lora = sum(p.numel() for n, p in unet.named_parameters() if ".lora_" in n)
    return {
        "E": count(codec.encoder),
        "H_a": count(codec.hyper_analysis),
        "P": count(codec.z_model, codec.mean_synthesis, codec.scale_synthesis),
        "H_s": count(codec.side_synthesis),
        "T_s": count(codec.transform),
        "D_a": count(guidance.fidelity_decoder),
        "F": count(guidance.backbone),
        "F_p": count(guidance.projector),
        "UNet": count(unet) - lora,
        "LoRA": lora,
        "D_m": count(pipeline.autoencoder),
    }


ARCHITECTURES: dict[str, Callable[..., OneStepPipeline]] = {
    "full": sodec_full,
    "tiny": sodec_tiny,
    "small": sodec_small,
}
