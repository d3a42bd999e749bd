"""Finite scalar quantization with the index <-> code mapping of vector-quantize-pytorch 1.21.2, which
the released hyperprior diffusion codec's checkpoints depend on (digest section 4).

Channel i has L_i levels. It is squashed with tanh into (-half_l, half_l), half_l = (L-1)(1+1e-3)/2,
shifted so that even L gets symmetric bins, rounded (straight-through) to level l in 0..L-1, and
coded as (l - L//2) / (L//2). The index is sum_i l_i * prod_{j<i} L_j: channel 0 is the least
significant digit. For levels [4]*7 the codes are {-1, -0.5, 0, 0.5} and an index has 14 bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .base import EntropyModel, no_params
from .packing import pack_indices, unpack_indices
from .rate import ste_round

_EPS = 1e-3


class FSQ(EntropyModel):
    """No parameters and no persistent buffers: nothing goes into a checkpoint. As an `EntropyModel` it
    takes no parameters and codes each position's index in `bits_per_index` bits (`packing.py`)."""

    def __init__(self, levels: list[int]) -> None:
        super().__init__()
        if not levels or any(int(n) < 2 for n in levels):
            raise ValueError(f"FSQ levels must be integers >= 2, got {levels}")
        self.levels = [int(n) for n in levels]
        self.dim = len(self.levels)
        self.channels = self.dim  # the name every entropy model uses for it
        self.codebook_size = math.prod(self.levels)
        self.bits_per_index = math.ceil(math.log2(self.codebook_size))
        basis = [math.prod(self.levels[:i]) for i in range(self.dim)]
        half_l = [(n - 1) * (1 + _EPS) / 2 for n in self.levels]
        offset = [0.5 if n % 2 == 0 else 0.0 for n in self.levels]
        shift = [math.atanh(o / h) for o, h in zip(offset, half_l)]

        def channel_buffer(name: str, values: list, dtype: torch.dtype) -> None:
            self.register_buffer(name, torch.tensor(values, dtype=dtype).view(1, -1, 1, 1), persistent=False)

        channel_buffer("_levels", self.levels, torch.int64)
        channel_buffer("_basis", basis, torch.int64)
        channel_buffer("_half_l", half_l, torch.float32)
        channel_buffer("_offset", offset, torch.float32)
        channel_buffer("_shift", shift, torch.float32)
        channel_buffer("_half_width", [n // 2 for n in self.levels], torch.float32)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z: B x dim x H x W -> (z_hat in z's dtype with straight-through gradients, int64 indices B x H x W).
        Runs in float32 even under autocast."""
        if z.dim() != 4 or z.shape[1] != self.dim:
            raise ValueError(f"FSQ expects B x {self.dim} x H x W, got {tuple(z.shape)}")
        with torch.autocast(z.device.type, enabled=False):
            bounded = torch.tanh(z.float() + self._shift) * self._half_l - self._offset
            level = ste_round(bounded) + self._half_width  # in 0..L-1
            codes = (level - self._half_width) / self._half_width
            indices = (level.detach().long() * self._basis).sum(dim=1)
        return codes.to(z.dtype), indices

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """int indices B x H x W -> float32 codes B x dim x H x W."""
        level = (indices.long().unsqueeze(1) // self._basis) % self._levels
        return (level.float() - self._half_width) / self._half_width

    # --- the EntropyModel interface ------------------------------------------------------------------

    def estimate(self, x: Tensor, **params: Tensor) -> tuple[Tensor, Tensor]:
        no_params(params)
        codes, _ = self(x)
        bits = float(x.shape[-2] * x.shape[-1] * self.bits_per_index)
        return codes, codes.new_full((x.shape[0],), bits, dtype=torch.float32)

    @torch.no_grad()
    def compress(self, x: Tensor, **params: Tensor) -> tuple[bytes, Tensor]:
        """The indices of all positions (batch, row, column in C order) packed; the codes from them."""
        no_params(params)
        _, indices = self(x)
        return pack_indices(indices.flatten().cpu(), self.bits_per_index), self.indices_to_codes(indices)

    @torch.no_grad()
    def decompress(self, data: bytes, shape: Sequence[int], **params: Tensor) -> Tensor:
        no_params(params)
        if len(shape) != 4 or shape[1] != self.dim:
            raise ValueError(f"FSQ decodes B x {self.dim} x H x W, got {tuple(shape)}")
        b, _, h, w = shape
        indices = unpack_indices(data, b * h * w, self.bits_per_index, num_codes=self.codebook_size)
        indices = torch.as_tensor(indices, dtype=torch.int64).reshape(b, h, w).to(self._levels.device)
        return self.indices_to_codes(indices)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"
