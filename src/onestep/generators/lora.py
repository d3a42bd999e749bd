"""Low-rank adapters (LoRA) for Linear and Conv2d layers, written to match a peft `LoraConfig` on an SD UNet.

A wrapped layer computes base(x) + (alpha / rank) * B(A(x)). For a conv, A has the base layer's kernel,
stride, padding and dilation (in -> rank) and B is 1x1 (rank -> out), so the update merges exactly
into the base kernel: dW[o, i] = scale * sum_r B[o, r] A[r, i]. Neither A nor B has a bias.

Parameter names follow peft without the adapter name: `<layer>.base_layer.*`, `<layer>.lora_A.weight`,
`<layer>.lora_B.weight` (peft writes `lora_A.default.weight`; importers insert/remove `.default`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# The released one-step UNet's peft LoraConfig: target-module suffixes (every attention projection, feed-forward,
# resnet and resampler conv, time projection) and name fragments that are never wrapped.
SD_UNET_TARGETS: tuple[str, ...] = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
    "time_emb_proj",
)
SD_UNET_EXCLUDE: tuple[str, ...] = ("conv_in", "add_attentions")


def lora_delta(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """The weight update scale * B A of an adapter: Linear (out x r)(r x in), or Conv2d with a k x k A
    (r x in x k x k) and a 1 x 1 B (out x r x 1 x 1)."""
    if a.dim() == 2:
        return scale * (b @ a)
    return scale * torch.einsum("or,rikl->oikl", b[:, :, 0, 0], a)


class LoRALayer(nn.Module):
    """A frozen-able base Linear/Conv2d plus a trainable low-rank update."""

    def __init__(self, base_layer: nn.Linear | nn.Conv2d, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be positive, got {rank}")
        self.base_layer = base_layer
        self.rank = rank
        self.scale = alpha / rank
        factory = {"device": base_layer.weight.device, "dtype": base_layer.weight.dtype}
        if isinstance(base_layer, nn.Linear):
            self.lora_A: nn.Module = nn.Linear(base_layer.in_features, rank, bias=False, **factory)
            self.lora_B: nn.Module = nn.Linear(rank, base_layer.out_features, bias=False, **factory)
        elif isinstance(base_layer, nn.Conv2d):
            if base_layer.groups != 1:
                raise ValueError("LoRA on grouped convolutions is not supported")
            self.lora_A = nn.Conv2d(
                base_layer.in_channels,
                rank,
                base_layer.kernel_size,
                base_layer.stride,
                base_layer.padding,
                base_layer.dilation,
                bias=False,
                padding_mode=base_layer.padding_mode,
                **factory,
            )
            self.lora_B = nn.Conv2d(rank, base_layer.out_channels, 1, bias=False, **factory)
        else:
            raise TypeError(f"LoRA wraps Linear or Conv2d layers, not {type(base_layer).__name__}")
        # peft's initialisation: A like a default layer, B zero, so a fresh adapter changes nothing.
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scale

    def delta_weight(self) -> torch.Tensor:
        """scale * B A, shaped like the base weight."""
        return lora_delta(self.lora_A.weight, self.lora_B.weight, self.scale)

    def merged(self) -> nn.Linear | nn.Conv2d:
        """The base layer with the update folded in (the base layer object is modified and returned)."""
        with torch.no_grad():
            self.base_layer.weight += self.delta_weight().to(self.base_layer.weight.dtype)
        return self.base_layer


def is_target(name: str, targets: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """peft's rule: the module name equals a target or ends with '.' + target; excluded fragments win."""
    if any(fragment in name for fragment in exclude):
        return False
    return any(name == t or name.endswith("." + t) for t in targets)


def add_lora(
    model: nn.Module,
    rank: int,
    alpha: float,
    targets: tuple[str, ...] = SD_UNET_TARGETS,
    exclude: tuple[str, ...] = SD_UNET_EXCLUDE,
) -> list[str]:
    """Wrap every matching Linear/Conv2d of `model` in place; returns the wrapped module names."""
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.Conv2d)) and is_target(name, targets, exclude)
    ]
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent)
        setattr(owner, child, LoRALayer(getattr(owner, child), rank, alpha))
    return names


def merge_lora(model: nn.Module) -> int:
    """Replace every LoRALayer in `model` by its merged base layer (W + scale B A); returns how many."""
    names = [name for name, module in model.named_modules() if isinstance(module, LoRALayer)]
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent)
        setattr(owner, child, getattr(owner, child).merged())
    return len(names)


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The adapters' parameters (what stage I trains inside the UNet)."""
    layers = [m for m in model.modules() if isinstance(m, LoRALayer)]
    return [p for layer in layers for p in (*layer.lora_A.parameters(), *layer.lora_B.parameters())]
