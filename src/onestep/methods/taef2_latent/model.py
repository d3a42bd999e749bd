"""The TAEF2 learned-latent model (the packaged default of v1, `weights/onestep-default-1.1/`): small enough
to train and decode on a laptop CPU.

    image -> TAEF2 encoder (frozen) -> LatentHyperpriorCodec -> stream
    stream -> LatentHyperpriorCodec -> ConvGenerator (one call) -> TAEF2 decoder (sub-pixel head) -> image

TAEF2 (the tiny FLUX.2 autoencoder, MIT) gives a 32-channel latent at 1/8 resolution; the codec codes it
with an FSQ hyperprior (z at 1/64) and the 4-pass spatial prior (y at 1/16); a residual conv generator
predicts the latent from the decoded features in one call. TAEF2's decoder keeps its pretrained 1/8 and 1/4
stages; its last two stages are replaced by the `light` head (half width at 1/2 resolution, then 2x2 RGB
sub-pixels), trained against the full TAEF2 decoder, which cuts decoding to about a third.
"""

from __future__ import annotations

import os

from ...autoencoders.taef2 import TAEF2
from ...codecs.latent_hyperprior import LatentHyperpriorCodec
from ...generators.conv import ConvGenerator
from ..pipeline import OneStepPipeline

DEFAULT_NAME = "onestep-default"


def taef2_latent_model(
    taef2_dir: str | os.PathLike[str] | None = None,
    y_channels: int = 64,
    channels: int = 128,
    feature_channels: int = 128,
    generator_width: int = 96,
    generator_depth: int = 2,
    decoder_head: str = "light",
    name: str = DEFAULT_NAME,
) -> OneStepPipeline:
    """Build the architecture; with `taef2_dir` (holding the released TAEF2 files) the autoencoder
    starts from the pretrained weights, otherwise everything is random (tests)."""
    if taef2_dir is None:
        autoencoder = TAEF2(decoder_head=decoder_head)
    else:
        autoencoder = TAEF2.from_folder(taef2_dir, decoder_head=decoder_head)
    codec = LatentHyperpriorCodec(
        latent_channels=autoencoder.latent_channels,
        latent_downsampling=autoencoder.downsampling,
        channels=channels,
        y_channels=y_channels,
        feature_channels=feature_channels,
    )
    generator = ConvGenerator(feature_channels, autoencoder.latent_channels, generator_width, generator_depth)
    return OneStepPipeline(autoencoder, codec, generator, name=name)
