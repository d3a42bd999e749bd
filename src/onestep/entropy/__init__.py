"""Entropy coding: the real Gaussian conditional coder (constriction ANS), training-time rate proxies,
FSQ for the hyper-latent, and fixed-length index packing."""

from .fsq import FSQ
from .gaussian import GaussianConditional, GaussianStreamDecoder, GaussianStreamEncoder
from .packing import pack_indices, packed_size, unpack_indices
from .rate import add_uniform_noise, gaussian_bits, lower_bound, ste_round
from .tables import NUM_SCALES, SCALE_MAX, SCALE_MIN, gaussian_tables

__all__ = [
    "FSQ",
    "GaussianConditional",
    "GaussianStreamDecoder",
    "GaussianStreamEncoder",
    "NUM_SCALES",
    "SCALE_MAX",
    "SCALE_MIN",
    "add_uniform_noise",
    "gaussian_bits",
    "gaussian_tables",
    "lower_bound",
    "pack_indices",
    "packed_size",
    "ste_round",
    "unpack_indices",
]
