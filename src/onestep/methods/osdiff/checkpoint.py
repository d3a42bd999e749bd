"""Reading the released OSDiff files, which are pickles: tensors only.

`v2-1_512-ema-pruned.ckpt` (ldm) and `lambda_N.ckpt` (PyTorch Lightning) are `torch.save` zip archives of
dicts holding a `state_dict`. They are opened with `torch.load(weights_only=True)`, whose unpickler rebuilds
tensors, numbers, strings and containers and refuses any other global (no code from the file runs), and
memory-mapped, so the 5 GB SD checkpoint is not read into memory at once. Every failure is one line.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from ...errors import ModelError


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The `state_dict` of a checkpoint file (or the file's dict itself if it is one), tensors only."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path} is not a {what}: not a torch.save zip archive")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path} holds more than tensors, refused ({first})") from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ModelError(
            f"cannot read {path} as a {what}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None
    state = content.get("state_dict", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not state:
        raise ModelError(f"{path} is not a {what}: it has no state_dict")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelError(
            f"{path} is not a {what}: its state_dict has non-tensor entries ({', '.join(map(str, bad[:4]))})"
        )
    return state
