"""The AVIF-restoration model: an AVIF base layer plus one call of a learned restoration generator.

    image -> (reduce 1x/2x/4x) -> AVIF at the chosen quality -> section `base`
    section -> AV1 decode -> Lanczos to full size -> RestorationGenerator(image, quality) -> image

SODEC's design with a conventional codec in the role of its VAE codec: the base layer carries the fidelity
(AV1's transforms, prediction and loop filters cost a CPU nothing to train), the generator removes coding
artefacts and restores texture, conditioned on the quality index, and below AVIF's lowest rate it is the
upsampler of a base layer coded at 1/2 or 1/4 resolution.
"""

from __future__ import annotations

from ...autoencoders.base import PixelSpace
from ...codecs.avif_base import DEFAULT_LEVELS, AvifBaseCodec
from ...errors import ConfigError
from ...generators.restore import RestorationGenerator
from ..pipeline import OneStepPipeline

NAME = "onestep-avif-restore"
# Named architectures: `full` is the packaged model (768x512 decodes in about 0.1 s on one CPU thread);
# `tiny` is for tests.
ARCHITECTURES: dict[str, dict[str, int | bool]] = {
    "full": {"width": 32, "depth": 3, "output_filter": True},
    "tiny": {"width": 8, "depth": 1, "output_filter": True},
}


# The base layer's encoder settings (training pairs are made with the same ones): libaom speed at full, 1/2 and
# 1/4 size (a reduced layer has 4x / 16x fewer pixels to search, so it can afford a slower search: on the median
# 768x512 Kodak image a half-size encode at speed 5 takes 0.22-0.51 s, a full-size one at speed 6 0.24-0.37 s,
# the busiest images up to 0.83 / 0.61 s; benchmarks/avif-restore-speed-1.2-kodak-run*.json) and the loop
# filter's sharpness.
SPEEDS = (6, 5, 4)
SHARPNESS = 2


def base_codec(levels: tuple[tuple[int, int], ...] = DEFAULT_LEVELS, default_quality: int = 6) -> AvifBaseCodec:
    return AvifBaseCodec(levels=levels, default_quality=default_quality, speed=SPEEDS, sharpness=SHARPNESS)


def avif_restore_model(
    architecture: str = "full",
    levels: tuple[tuple[int, int], ...] = DEFAULT_LEVELS,
    default_quality: int = 6,
    name: str = NAME,
) -> OneStepPipeline:
    """A randomly initialised model (the generator starts as the identity: it returns the base layer)."""
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {architecture!r} (known: {', '.join(ARCHITECTURES)})")
    codec = base_codec(levels, default_quality)
    generator = RestorationGenerator(codec.condition_channels, **ARCHITECTURES[architecture])
    return OneStepPipeline(PixelSpace(), codec, generator, name=name)


def full(**kwargs: object) -> OneStepPipeline:
    return avif_restore_model("full", **kwargs)  # type: ignore[arg-type]


def tiny(**kwargs: object) -> OneStepPipeline:
    return avif_restore_model("tiny", **kwargs)  # type: ignore[arg-type]
