"""Stage I: the whole codec and the generator's trainable parts, end to end.

    loss = l1 * L1 + perceptual * P + lambda(t) * bpp + latent_mse * MSE(latent_hat, latent) + auxiliary

`auxiliary` is an optional extra loss a method's own task adds (`codec_loss(codec output, batch)` ->
(loss, logs)), e.g. a semantic distillation into the codec's hyperprior.

In latent mode (precomputed latents) the pixel terms are dropped (latent MSE + rate), unless
`loss.teacher_decoder` names a frozen autoencoder: then the pipeline decodes latent_hat and the pixel
terms compare it with the teacher's decoding of the true latent (no images needed).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..methods.pipeline import OneStepPipeline
from .build import trainable_parameters
from .losses import PixelLoss, RateWeight, make_perceptual
from .tasks import TrainingTask


class Stage1(nn.Module):
    """The training task: `forward(batch, step, phase)` returns (loss, logs) for the one phase, `main`."""

    def __init__(self, pipeline: OneStepPipeline, config: dict[str, Any], auxiliary: nn.Module | None = None) -> None:
        super().__init__()
        loss = config["loss"]
        self.pipeline = pipeline
        self.latents = bool(config["data"]["latents"])
        self.rate = RateWeight(**loss["rate"])
        self.latent_mse = float(loss["latent_mse"])
        self.pixel = None
        self._teacher: list[nn.Module] = []  # a list keeps the frozen teacher out of parameters and checkpoints
        if self.latents and loss["teacher_decoder"]:
            from .pack import load_autoencoder

            self._teacher.append(load_autoencoder(str(loss["teacher_decoder"])).requires_grad_(False).eval())
        if not self.latents or self._teacher:
            network = make_perceptual(loss["perceptual_net"], loss["lpips_dir"]) if loss["perceptual"] else None
            self.pixel = PixelLoss(loss["l1"], loss["perceptual"], network)
        self.auxiliary = auxiliary
        if self.latents and not self.latent_mse and not self._teacher:
            raise ConfigError(
                "latent training needs loss.latent_mse > 0 or loss.teacher_decoder (no pixel loss without a decoder)"
            )

    def phases(self, step: int) -> tuple[str, ...]:
        return ("main",)

    def learning_rate(self, phase: str, default: float) -> float:
        return default

    def optimizer_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {"main": trainable_parameters(self)}

    def forward(self, batch: torch.Tensor, step: int, phase: str = "main") -> tuple[torch.Tensor, dict[str, float]]:
        target = batch
        if self.latents:
            out = self.pipeline(None, latent=batch, decode=bool(self._teacher))
            if self._teacher:
                self._teacher[0].to(batch.device)
                with torch.no_grad():
                    target = self._teacher[0].decode(batch.float())
        else:
            out = self.pipeline(batch)
        bpp = out.bpp.mean()
        weight = self.rate(step)
        loss = weight * bpp
        logs = {"bpp": bpp.item(), "lambda": weight}
        if self.pixel is not None:
            pixel, pixel_logs = self.pixel(out.reconstruction, target)
            loss = loss + pixel
            logs.update(pixel_logs)
        if self.latent_mse:
            mse = F.mse_loss(out.latent_hat.float(), out.latent.float())
            loss = loss + self.latent_mse * mse
            logs["latent_mse"] = mse.item()
        if self.auxiliary is not None:
            extra, extra_logs = self.auxiliary.codec_loss(out.codec, batch)
            loss = loss + extra
            logs.update(extra_logs)
        logs["loss"] = loss.item()
        return loss, logs


def make_stage1(config: dict[str, Any], pipeline: OneStepPipeline, dataset: Any) -> Stage1:
    return Stage1(pipeline, config)


TASK = TrainingTask("stage1", make_stage1)
