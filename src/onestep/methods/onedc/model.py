"""OneDC (one-step diffusion codec) as a OneStepPipeline:

    KLAutoencoder (SD 2.1 VAE, 16 x 16 windowed mid attention)
    OneDCCodec    (y at /16 with the 4-pass prior, FSQ z at /64, semantic tokens; modes "normal" and "z-only")
    OneStepUNet   (SD1.5 UNet on the codec's 320-channel features, t = 999, LoRA r64 / alpha 8)

`onedc_full()` is the released architecture (random weights; `onestep import onedc` fills in the released
ones); `onedc_tiny()` keeps every structural feature at test size (about 3.7M parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...autoencoders.kl import KLAutoencoder
from ...generators.unet import TINY_UNET, OneStepUNet
from ..pipeline import OneStepPipeline
from .codec import OneDCCodec

NAME = "onedc"


def _generator_for(codec: OneDCCodec, unet: dict[str, Any] | None, lora_rank: int) -> OneStepUNet:
    # The UNet reads the codec's features and cross-attends to its semantic tokens without a projection.
    overrides = {**(unet or {}), "cross_attention_dim": codec.config["semantic_dim"]}
    return OneStepUNet(unet=overrides, feature_channels=codec.config["output_channels"], lora_rank=lora_rank)


def onedc_full(lora_rank: int = 64, name: str = NAME) -> OneStepPipeline:
    """The reference architecture: 83.7M (VAE) + 394.1M (codec) + 928.6M (UNet with LoRA) parameters.
    `lora_rank=0` gives the merged inference form (861.4M UNet)."""
    codec = OneDCCodec.full()
    return OneStepPipeline(KLAutoencoder(), codec, _generator_for(codec, None, lora_rank), name=name)


def onedc_tiny(lora_rank: int = 4, name: str = f"{NAME}-tiny") -> OneStepPipeline:
    """Random weights, small widths, the same structure: for tests."""
    codec = OneDCCodec.tiny()
    return OneStepPipeline(KLAutoencoder.tiny(), codec, _generator_for(codec, TINY_UNET, lora_rank), name=name)


ARCHITECTURES: dict[str, Callable[..., OneStepPipeline]] = {"full": onedc_full, "tiny": onedc_tiny}
