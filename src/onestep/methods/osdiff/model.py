"""OSDiff as a OneStepPipeline:

    KLAutoencoder         SD-2.1 VAE (global mid attention, posterior mode, scale 0.18215), frozen
    OSDiffCodec           LFGCM on the SD latent: factorized z, checkerboard + channel-slice y, c_latent
    FixedContext          the empty-prompt OpenCLIP embedding, 77 x 1024 (filled in by the importer)
    OSDiffGenerator       SD-2.1 UNet + 0.2-width control module at t = 999 on [y_T ++ c_latent]

`osdiff_full()` is the reference architecture with random weights (`onestep import osdiff` fills in the
released ones); `osdiff_tiny()` keeps every structural feature at test size, with a random context.
The discriminator (`LatentDiscriminator`) is a training part, built by the training task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ...autoencoders.kl import KLAutoencoder
from ...generators.conditioning import FixedContext
from ..pipeline import OneStepPipeline
from .codec import OSDiffCodec
from .control import OSDiffGenerator
from .discriminator import LatentDiscriminator
from .sd21 import TINY_HEAD_CHANNELS, TINY_UNET
from .text import CONTEXT_LENGTH

NAME = "osdiff"
TINY_GENERATOR: dict[str, Any] = dict(
    unet=TINY_UNET, head_channels=TINY_HEAD_CHANNELS, control_ratio=0.5, control_head_channels=8
)


def osdiff_full(name: str = NAME, seed: int | None = None) -> OneStepPipeline:
    """The reference architecture: 83.7M (VAE) + 28.3M (codec; the reference's LFGCM adds 6.4M of dead SFT
    layers) + 865.9M (SD-2.1 UNet) + 24.4M (control module) parameters; the discriminator has 404.1M."""
    codec = OSDiffCodec() if seed is None else OSDiffCodec(seed=seed)
    generator = OSDiffGenerator()
    conditioner = FixedContext(CONTEXT_LENGTH, generator.context_dim)
    return OneStepPipeline(KLAutoencoder(attention_window=None), codec, generator, name=name, conditioner=conditioner)


def osdiff_tiny(name: str = f"{NAME}-tiny", seed: int | None = None) -> OneStepPipeline:
    """Random weights (context included), small widths, the same structure: for tests."""
    codec = OSDiffCodec.tiny() if seed is None else OSDiffCodec.tiny(seed=seed)
    generator = OSDiffGenerator(**TINY_GENERATOR)
    conditioner = FixedContext(CONTEXT_LENGTH, generator.context_dim)
    if conditioner.context.device.type != "meta":
        conditioner.context.normal_(generator=torch.Generator().manual_seed(0))
    autoencoder = KLAutoencoder.tiny(attention_window=None)
    return OneStepPipeline(autoencoder, codec, generator, name=name, conditioner=conditioner)


def discriminator_for(generator: OSDiffGenerator) -> LatentDiscriminator:
    """The latent discriminator matching a generator's UNet (full width), seeded from its weights as the
    reference seeds it from the SD-2.1 checkpoint."""
    config = generator.config
    discriminator = LatentDiscriminator(unet=config["unet"], head_channels=config["head_channels"])
    base = generator.unet.state_dict()
    own = discriminator.backbone.state_dict()
    discriminator.backbone.load_state_dict({k: base[k] for k in own})
    return discriminator


ARCHITECTURES: dict[str, Callable[..., OneStepPipeline]] = {"full": osdiff_full, "tiny": osdiff_tiny}
