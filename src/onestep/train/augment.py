"""The per-step resolution schedule of the SD-based one-step codec's reference training (its digest §7.1).

Items arrive as big square crops (e.g. 1024). Each step, one transform is drawn on rank 0 and
broadcast, so every process uses the same shapes:

- `resize`: the batch is resized to the training size (e.g. 1024 -> 512);
- `crop`: one random training-size crop of the batch;
- `full`: the big crops are kept and the batch is truncated (to 1/4 by default) to bound memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError

KINDS = ("resize", "crop", "full")


@dataclass
class ResolutionSchedule:
    size: int  # training size after `resize` or `crop`
    resize: float = 0.2
    crop: float = 0.5
    full: float = 0.3
    full_batch_divisor: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        probs = self.probabilities()
        if min(probs) < 0 or sum(probs) <= 0:
            raise ConfigError(f"resolution schedule probabilities must be >= 0 and not all 0, got {probs}")
        if self.full_batch_divisor < 1:
            raise ConfigError("full_batch_divisor must be >= 1")

    def probabilities(self) -> list[float]:
        return [float(self.resize), float(self.crop), float(self.full)]

    def draw(self, step: int, device: torch.device | str = "cpu") -> str:
        """The transform of `step`: drawn on rank 0 from (seed, step), then broadcast to every rank."""
        from accelerate.utils import broadcast

        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        choice = torch.multinomial(torch.tensor(self.probabilities()), 1, generator=generator)
        return KINDS[int(broadcast(choice.to(device), from_process=0))]

    def apply(self, batch: torch.Tensor, kind: str, generator: torch.Generator, resizable: bool = True) -> torch.Tensor:
        """Apply `kind` to a B x C x S x S batch. Latent batches (`resizable=False`) cannot be resized."""
        if kind == "full":
            return batch[: max(1, batch.shape[0] // self.full_batch_divisor)]
        if batch.shape[-1] == self.size and batch.shape[-2] == self.size:
            return batch
        if kind == "resize":
            if not resizable:
                raise ConfigError("latent batches cannot be resized: set the schedule's `resize` probability to 0")
            resized = F.interpolate(batch, size=(self.size, self.size), mode="bicubic", antialias=True)
            return resized.clamp(-1, 1)  # bicubic overshoots
        h, w = batch.shape[-2:]
        top = int(torch.randint(h - self.size + 1, (1,), generator=generator))
        left = int(torch.randint(w - self.size + 1, (1,), generator=generator))
        return batch[..., top : top + self.size, left : left + self.size]
