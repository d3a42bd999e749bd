"""Entropy models as parts (`base.EntropyModel`): the Gaussian conditional, FSQ (fixed-length indices) and the
factorized prior, all coded for real with constriction's ANS (`coder.py`); training-time rate proxies and
fixed-length index packing."""

from .base import EntropyModel
from .coder import CodingTables, StreamDecoder, StreamEncoder
from .factorized import FactorizedPrior
from .fsq import FSQ
from .gaussian import GaussianConditional, GaussianStreamDecoder, GaussianStreamEncoder
from .packing import pack_indices, packed_size, unpack_indices
from .rate import add_uniform_noise, gaussian_bits, lower_bound, ste_round
from .tables import NUM_SCALES, SCALE_MAX, SCALE_MIN, gaussian_tables

__all__ = [
    "CodingTables",
    "EntropyModel",
    "FSQ",
    "FactorizedPrior",
    "GaussianConditional",
    "GaussianStreamDecoder",
    "GaussianStreamEncoder",
    "NUM_SCALES",
    "SCALE_MAX",
    "SCALE_MIN",
    "StreamDecoder",
    "StreamEncoder",
    "add_uniform_noise",
    "gaussian_bits",
    "gaussian_tables",
    "lower_bound",
    "pack_indices",
    "packed_size",
    "ste_round",
    "unpack_indices",
]
