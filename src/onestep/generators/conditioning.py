"""Conditioners: the part of a pipeline that gives the one-step generator its cross-attention context.

A conditioner turns what the decoder has (the latent codec's output: features, side information, a preview
image in `extras`) into tokens. A codec with semantic hyperprior tokens is attended to directly (no conditioner:
the codec's own `context` is used), OSDiff to a fixed empty-prompt embedding (`FixedContext`), SODEC to features
of a fidelity decoder's image: each method plugs in its own part and nothing else changes.
"""

from __future__ import annotations

import torch

from ..codecs.base import CodecOutput
from ..modeling import ModelMixin


class Conditioner(ModelMixin):
    def forward(self, codec_output: CodecOutput) -> torch.Tensor | None:
        """B x tokens x D context for the generator, or None."""
        raise NotImplementedError


class FixedContext(Conditioner):
    """The same tokens for every image (e.g. the embedding of an empty text prompt), stored as a buffer so that
    they travel with the weights and enter the fingerprint."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("context", torch.zeros(1, tokens, dim))

    def forward(self, codec_output: CodecOutput) -> torch.Tensor:
        batch = codec_output.features.shape[0]
        return self.context.to(codec_output.features.dtype).expand(batch, -1, -1)
