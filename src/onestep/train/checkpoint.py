"""Training checkpoints with exact resume.

A checkpoint folder `OUTPUT/checkpoints/step_NNNNNNN/` holds:

- `model.safetensors`: every trainable parameter and every buffer of the training task (frozen
  parameters are rebuilt from the config, so a 1B-parameter frozen teacher is not copied each time);
- `state.pt`: optimizer and scheduler states, step, data position and the config text, written with
  `torch.save` and read back with `torch.load(weights_only=True)` (plain tensors and containers only);
- `rng_RANK.pt`: each process's torch (CPU and CUDA) and Python RNG states.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import ModelError

STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass
class TrainingState:
    step: int
    position: int
    optimizers: dict[str, Any]
    schedulers: dict[str, Any]
    config: str


def mutable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors that change during training: trainable parameters and all buffers."""
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    state = module.state_dict(keep_vars=True)
    keep = {k: v for k, v in state.items() if k in trainable or not isinstance(v, nn.Parameter)}
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in keep.items()}


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, module: nn.Module, state: TrainingState, main: bool, rank: int) -> None:
    """Every process writes its RNG state; the main process writes the model and the rest."""
    folder.mkdir(parents=True, exist_ok=True)
    if main:
        save_file(mutable_state(module), str(folder / "model.safetensors"), metadata={"step": str(state.step)})
        torch.save(state.__dict__, folder / "state.pt")
    torch.save(rng_state(), folder / f"rng_{rank}.pt")


def load_checkpoint(folder: Path, module: nn.Module, rank: int) -> TrainingState:
    """Restore `module`'s mutable tensors (strictly) and this process's RNG; return the rest."""
    for name in ("model.safetensors", "state.pt"):
        if not (folder / name).is_file():
            raise ModelError(f"{folder} is not a training checkpoint: {name} is missing")
    try:
        tensors = load_file(str(folder / "model.safetensors"))
        state = torch.load(folder / "state.pt", weights_only=True)
    except Exception as e:  # damaged files raise many types
        raise ModelError(f"cannot read checkpoint {folder}: {e}") from None
    expected = set(mutable_state(module))
    if set(tensors) != expected:
        missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise ModelError(
            f"checkpoint {folder} does not fit this training setup: "
            f"{len(missing)} missing (e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]})"
        )
    own = module.state_dict()
    wrong = [k for k in tensors if own[k].shape != tensors[k].shape]
    if wrong:
        k = wrong[0]
        raise ModelError(f"checkpoint {folder}: {k} has shape {tuple(tensors[k].shape)}, not {tuple(own[k].shape)}")
    module.load_state_dict(tensors, strict=False)
    rng_path = folder / f"rng_{rank}.pt"
    if rng_path.is_file():
        set_rng_state(torch.load(rng_path, weights_only=True))
    return TrainingState(**state)


def find_checkpoint(path: str | Path) -> Path:
    """`path` is a checkpoint folder, or an output folder whose latest checkpoint is taken."""
    path = Path(path)
    if (path / "state.pt").is_file():
        return path
    steps = checkpoints(path / "checkpoints") or checkpoints(path)
    if not steps:
        raise ModelError(f"no training checkpoint found in {path}")
    return steps[-1]


def checkpoints(folder: Path) -> list[Path]:
    """The `step_N` checkpoint folders under `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and STEP_DIR.match(p.name) and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))  # type: ignore[union-attr]


def prune_checkpoints(folder: Path, keep: int) -> None:
    if keep <= 0:
        return
    for old in checkpoints(folder)[:-keep]:
        shutil.rmtree(old)
