"""Checkpoint key names: the reference OneDC codec (`model_1.safetensors`) <-> `OneDCCodec`.

Only the top-level module names differ; inside each module the reference's names are kept, so the
mapping is a one-to-one prefix rename.
"""

from __future__ import annotations

import os

import torch
from safetensors.torch import load_file

from ...errors import ModelError
from ...modeling import load_state_dict_strict
from .codec import OneDCCodec

# (reference prefix, our prefix). No prefix in a column is a prefix of another entry of that column.
PREFIXES = (
    ("enc.", "encoder."),
    ("dec.", "decoder."),
    ("semantic_adaptor.", "semantic."),
    ("hyper_enc.", "hyper_encoder."),
    ("hyper_dec.", "hyper_decoder."),
    ("y_prior_fusion.", "prior.fusion."),
    ("y_spatial_prior_reduction.", "prior.reduction."),
    ("y_spatial_prior_adaptor_1.", "prior.adaptors.0."),
    ("y_spatial_prior_adaptor_2.", "prior.adaptors.1."),
    ("y_spatial_prior_adaptor_3.", "prior.adaptors.2."),
    ("y_spatial_prior.", "prior.context."),
)


def _rename(key: str, source: int) -> str:
    for pair in PREFIXES:
        if key.startswith(pair[source]):
            return pair[1 - source] + key[len(pair[source]) :]
    side = "reference" if source == 0 else "OneDCCodec"
    raise ModelError(f"{key!r} is not a {side} codec key")


def reference_key_to_ours(key: str) -> str:
    return _rename(key, 0)


def our_key_to_reference(key: str) -> str:
    return _rename(key, 1)


def from_reference_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {reference_key_to_ours(k): v for k, v in state.items()}


def to_reference_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {our_key_to_reference(k): v for k, v in state.items()}


def load_reference_codec(
    path: str | os.PathLike[str], codec: OneDCCodec | None = None, device: str = "cpu"
) -> OneDCCodec:
    """Load a reference `model_1.safetensors` (strict keys and shapes) into `codec` (default: a new
    `OneDCCodec.full()`); returns it in eval mode."""
    try:
        state = load_file(str(path), device=device)
    except Exception as e:  # safetensors raises its own types for missing or damaged files
        raise ModelError(f"cannot read reference codec weights {path}: {e}") from None
    codec = (OneDCCodec.full() if codec is None else codec).to(device)
    load_state_dict_strict(codec, from_reference_state_dict(state), source=str(path))
    return codec.eval()
