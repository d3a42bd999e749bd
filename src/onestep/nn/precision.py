"""Running a float32 network in a lower precision (bfloat16) except for chosen layers.

Used after the entropy path only (`OneStepPipeline.set_render_dtype`): the bulk of a generator or decoder in
bfloat16 and channels-last, where oneDNN's AVX512-BF16 / AMX kernels are several times faster on CPU, and
the layers whose rounding would show kept in float32: the first ones (the input's rounding would be
amplified downstream) and the last ones (a bfloat16 output alone is about half a grey level off).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype, memory_format=torch.channels_last if value.dim() == 4 else torch.preserve_format)
    return value


def to_compute_dtype(module: nn.Module, dtype: torch.dtype) -> None:
    """Weights to `dtype`, 4-D ones channels-last (one way: the float32 values are dropped)."""
    nn.Module.to(module, dtype=dtype, memory_format=torch.channels_last)  # not diffusers' `to`: it warns


def keep_float32(layer: nn.Module, output_dtype: torch.dtype | None = None) -> None:
    """`layer` computes in float32 whatever its input's dtype (a pre-hook casts the inputs); its output is cast
    to `output_dtype` (channels-last) for the lower-precision layers after it, or left float32 (None)."""
    layer.to(torch.float32)
    layer.register_forward_pre_hook(lambda _, args: tuple(_cast(a, torch.float32) for a in args))
    if output_dtype is not None:
        layer.register_forward_hook(lambda _, __, output: _cast(output, output_dtype))


def cast_inputs(layer: nn.Module, dtype: torch.dtype) -> None:
    """`layer`'s floating inputs are cast to `dtype` (where a float32 tensor reaches a lower-precision layer)."""
    layer.register_forward_pre_hook(lambda _, args: tuple(_cast(a, dtype) for a in args))
