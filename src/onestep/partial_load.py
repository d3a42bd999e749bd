"""Loading a model folder without materialising what a caller does not need.

`from_pretrained` builds the model with its parameters on the meta device (no memory, no random
initialisation that the file would overwrite anyway), then reads the file one tensor at a time (plain reads,
no mapping) and assigns the tensors in place of the meta parameters: the weights are in memory once, never
twice (a model plus a whole loaded state dict), in the dtype the model holds them in (a model set to render
in bfloat16 before loading never holds its float32 UNet). Weights under `skip` prefixes are never read and
stay on the meta device: a decoder-only OneDC leaves out its codec's encoder and its VAE's encoder.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import torch
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


_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_header(f: BinaryIO, size: int) -> tuple[dict[str, dict], dict[str, str], int]:
    """A safetensors file's header, read from its start: the tensors (key -> dtype, shape, data_offsets), the
    metadata, and where the data starts. ValueError or struct.error for a damaged header."""
    (length,) = struct.unpack("<Q", f.read(8))
    if length > size - 8:
        raise ValueError("header longer than the file")
    header = json.loads(f.read(length))
    metadata = header.pop("__metadata__", None) or {}
    return header, metadata, 8 + length


def _read(f: BinaryIO, entry: dict, start: int, size: int) -> torch.Tensor:
    """One tensor read into memory of its own with plain reads: no mapping of the file stays behind (a mapped
    file's touched pages count in the process's memory as long as any tensor of it lives)."""
    begin, end = entry["data_offsets"]
    tensor = torch.empty(entry["shape"], dtype=_DTYPES[entry["dtype"]])
    nbytes = tensor.numel() * tensor.element_size()
    if end - begin != nbytes or start + end > size:
        raise ValueError("a tensor's bytes do not match its shape or lie outside the file")
    f.seek(start + begin)
    if nbytes and f.readinto(memoryview(tensor.view(-1).view(torch.uint8).numpy())) != nbytes:
        raise ValueError("the file ends inside a tensor")
    return tensor


def load_weights(model: nn.Module, path: Path, device: str, skip: tuple[str, ...] = ()) -> None:
    """Fill `model` (built under `parameters_on_meta`) from the safetensors file at `path`: keys and shapes
    checked against the whole file first, then every tensor not under a `skip` prefix read, converted to the
    dtype and memory format its module holds (one tensor at a time) and assigned."""
    from .modeling import shape_mismatches

    own = model.state_dict(keep_vars=True)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header, _, start = read_header(f, size)
            shapes = {k: tuple(v["shape"]) for k, v in header.items()}
            problems = shape_mismatches({k: tuple(v.shape) for k, v in own.items()}, shapes)
            if problems:
                raise ModelError(f"weights in {path} do not fit {type(model).__name__}: " + "; ".join(problems))
            for key in sorted(k for k in shapes if not k.startswith(skip)):
                target, tensor = own[key], _read(f, header[key], start, size)
                if target.dtype != tensor.dtype or target.stride() != tensor.stride() or device != "cpu":
                    # the dtype and layout (e.g. channels-last) the module was given before loading
                    like = torch.empty_strided(target.shape, target.stride(), dtype=target.dtype, device=device)
                    tensor = like.copy_(tensor)
                _assign(model, key, tensor)
    except ModelError:
        raise
    except Exception as e:  # a damaged file: bad header, offsets, sizes
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
