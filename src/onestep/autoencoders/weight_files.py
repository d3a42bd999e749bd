"""Reading third-party weight files safely: safetensors, or PyTorch files with `weights_only=True`.

Every failure (missing file, damaged file, a pickle that is not a plain state dict) becomes a
one-line `ModelError`. Floating tensors come back as float32, since the released files are often fp16.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import ModelError


def _float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    return path


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    path = _existing(path)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own types for damaged files
        raise ModelError(f"cannot read {path} as safetensors: {e}") from None
    return _float32(state)


def read_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A `.pth` state dict, loaded with `weights_only=True` (no arbitrary unpickling)."""
    path = _existing(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise ModelError(f"cannot read {path} as a PyTorch state dict: {reason}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a plain state dict of tensors")
    return _float32(state)
