"""Helpers for importers of published checkpoints (`onestep import METHOD ...`): open safetensors files with
one-line errors, compare their keys and shapes with an architecture's, and write a model's safetensors file
one tensor at a time (a full-size import then holds about one tensor in memory, not the whole model).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from ..errors import ModelError
from ..files import atomic_path
from ..modeling import FINGERPRINT_METADATA, FingerprintHasher, shape_mismatches

SHOWN_KEYS = 4  # keys quoted per kind of mismatch


def safe_open_checked(path: Path) -> Any:
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as e:  # safetensors raises its own types for damaged files
        raise ModelError(f"cannot read {path} as safetensors: {e}") from None


def check_keys(file: Any, expected: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """Compare a safetensors file's keys and shapes with the architecture's, naming what differs."""
    shapes = {k: tuple(file.get_slice(k).get_shape()) for k in file.keys()}
    problems = shape_mismatches({k: tuple(v.shape) for k, v in expected.items()}, shapes, shown=SHOWN_KEYS)
    if problems:
        raise ModelError(f"{path} is not a {what} of this architecture: " + "; ".join(problems))


# --- writing a safetensors file one tensor at a time ------------------------------------------------------

_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def write_safetensors_streaming(
    path: Path,
    specs: dict[str, tuple[tuple[int, ...], torch.dtype]],
    tensor: Callable[[str], torch.Tensor],
) -> None:
    """Write a safetensors file whose layout (`specs`: name -> shape, dtype) is known up front, fetching and
    writing each tensor in turn. The file appears atomically, complete or not at all."""
    names = sorted(specs)
    # The fingerprint is only known once every tensor is written: a placeholder of its final length goes in the
    # header and is overwritten at the end (the tensors are hashed in the order they are written).
    placeholder = "0" * 16
    header: dict[str, Any] = {"__metadata__": {"format": "pt", FINGERPRINT_METADATA: placeholder}}
    offset = 0
    for name in names:
        shape, dtype = specs[name]
        size = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": _DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data to 8 bytes
    hasher = FingerprintHasher()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for name in names:
            shape, dtype = specs[name]
            value = tensor(name).detach().to(device="cpu", dtype=dtype).contiguous()
            if tuple(value.shape) != shape:
                raise ModelError(f"{name}: got a tensor of shape {tuple(value.shape)}, expected {shape}")
            hasher.update(name, value)
            f.write(value.reshape(-1).view(torch.uint8).numpy().tobytes())
        f.seek(8 + encoded.index(placeholder.encode()))
        f.write(hasher.value().hex().encode())
