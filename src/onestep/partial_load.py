"""Loading a model folder without materialising what a caller does not need.

`from_pretrained` builds the model with its parameters on the meta device (no memory, no random
initialisation that the file would overwrite anyway), then reads the file one tensor at a time and assigns
the tensors in place of the meta parameters: the weights are in memory once, never twice (a model plus a
whole loaded state dict). Weights under `skip` prefixes are never read and stay on the meta device; a
decoder-only OneDC this way leaves out its codec's encoder and its VAE's encoder (a third of its weights).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from .errors import ModelError


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Parameters registered meanwhile move to the meta device as they are registered (so their modules'
    initialisers then run on meta: free). Buffers stay real: non-persistent ones are not in the file.
    Modules built by other Python threads meanwhile would be affected too: models are built on one."""
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and not param.is_meta:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register  # type: ignore[method-assign]


def load_weights(model: nn.Module, path: Path, device: str, skip: tuple[str, ...] = ()) -> None:
    """Fill `model` (built under `parameters_on_meta`) from the safetensors file at `path`: keys and shapes
    checked against the whole file first, then every tensor not under a `skip` prefix read and assigned."""
    from .modeling import shape_mismatches

    own = model.state_dict(keep_vars=True)
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (not a dict)
            problems = shape_mismatches({k: tuple(v.shape) for k, v in own.items()}, shapes)
            if problems:
                raise ModelError(f"weights in {path} do not fit {type(model).__name__}: " + "; ".join(problems))
            for key in sorted(k for k in shapes if not k.startswith(skip)):
                _assign(model, key, f.get_tensor(key).to(own[key].dtype))
    except ModelError:
        raise
    except Exception as e:  # safetensors raises its own types for damaged files
        raise ModelError(f"cannot read {path}: {e}") from None
    left = [k for k, v in model.state_dict(keep_vars=True).items() if v.is_meta and not k.startswith(skip)]
    if left:  # a module that made a tensor from a meta parameter while it was built
        raise ModelError(f"{type(model).__name__} cannot be loaded in parts: {', '.join(left[:3])} stayed empty")
    if device != "cpu":  # what the file does not hold (non-persistent buffers) was built on the CPU
        model._apply(lambda t: t if t.is_meta else t.to(device))


def _assign(model: nn.Module, key: str, tensor: torch.Tensor) -> None:
    """`load_state_dict(assign=True)` for one key: the file's tensor replaces the meta one (no copy)."""
    owner_name, _, name = key.rpartition(".")
    owner = model.get_submodule(owner_name)
    if name in owner._parameters:
        old = owner._parameters[name]
        owner._parameters[name] = nn.Parameter(tensor, requires_grad=old.requires_grad if old is not None else True)
    else:
        owner._buffers[name] = tensor


def weights_device(module: nn.Module) -> torch.device:
    """Where a module's loaded weights are (skipped ones are on the meta device)."""
    return next((p.device for p in module.parameters() if not p.is_meta), torch.device("cpu"))
