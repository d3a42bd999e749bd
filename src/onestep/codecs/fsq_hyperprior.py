"""The hyperprior codecs whose side information is an FSQ-quantised z with fixed-length indices and whose
y is coded with the 4-pass spatial prior (the released diffusion codec's, the TAEF2 model's, ...): a
`HyperpriorCodec` whose z model is the FSQ held in `fsq`.

Sections: "z" (fixed-length FSQ indices) and, in the "normal" mode, "y" (one stream of 4 chunks).
"""

from __future__ import annotations

from ..entropy.fsq import FSQ
from .hyperprior_codec import SECTIONS, HyperpriorCodec, section_bits
from .spatial_prior import FourPassPrior

__all__ = ["SECTIONS", "FSQHyperpriorCodec", "section_bits"]


class FSQHyperpriorCodec(HyperpriorCodec):
    """Subclasses set `fsq`, `prior` and `pad_multiple` (the pixel size of one z position)."""

    fsq: FSQ
    prior: FourPassPrior

    @property
    def z_model(self) -> FSQ:  # type: ignore[override]
        return self.fsq
