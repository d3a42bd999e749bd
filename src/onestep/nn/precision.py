"""Running a float32 network in a lower precision (bfloat16) except for chosen layers.

Used after the entropy path only (`OneStepPipeline.set_render_dtype`): the bulk of a generator or decoder in
bfloat16 and channels-last, where oneDNN's AVX512-BF16 / AMX kernels are several times faster on CPU, and
the layers whose rounding would show kept in float32: the first ones (the input's rounding would be
amplified downstream) and the last ones (a bfloat16 output alone is about half a grey level off).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype, memory_format=torch.channels_last if value.dim() == 4 else torch.preserve_format)
    return value


def to_compute_dtype(
    module: nn.Module, dtype: torch.dtype, keep_float32: Sequence[tuple[nn.Module, torch.dtype | None]] = ()
) -> None:
    """Floating weights to `dtype`, 4-D ones channels-last (one way: the float32 values are dropped), except
    those of the `keep_float32` layers: they stay float32 (never rounded on the way) and compute in float32
    whatever their input's dtype (a pre-hook casts the inputs); each one's output is cast to the dtype paired
    with it (for the lower-precision layers after it) or left float32 (None)."""
    kept = {id(t) for layer, _ in keep_float32 for t in (*layer.parameters(), *layer.buffers())}
    for sub in module.modules():
        for store in (sub._parameters, sub._buffers):
            for name, t in store.items():
                if t is None or not t.is_floating_point():
                    continue
                new = _cast(t.detach(), torch.float32 if id(t) in kept else dtype)
                store[name] = nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new
    for layer, output_dtype in keep_float32:
        layer.register_forward_pre_hook(lambda _, args: tuple(_cast(a, torch.float32) for a in args))
        if output_dtype is not None:
            layer.register_forward_hook(lambda _, __, output, d=output_dtype: _cast(output, d))


def cast_inputs(layer: nn.Module, dtype: torch.dtype) -> None:
    """`layer`'s floating inputs are cast to `dtype` (where a float32 tensor reaches a lower-precision layer)."""
    layer.register_forward_pre_hook(lambda _, args: tuple(_cast(a, dtype) for a in args))
