"""OSDiff's training (paper §3.4, digest §1.7-1.8) as a task on the accelerate engine: three optimizer phases
per step, in the reference's order.

    generator      L = l1 |y0 - y_r|^2 + l2 R + l3 |y0 - c_latent|^2 + l4 softplus(-D(noise(y_r, t)))
                   (paper: 1, {1, 2}, 2, 0.01), over the control module and the codec but its quantiles.
                   D's weights are frozen for this phase by the optimizer (only the generator's step runs)
                   but the graph is kept, so the adversarial term has a gradient (the released code computes
                   it under no_grad, which makes it a constant).
    aux            the factorized prior's quantile loss, over `quantiles` only (reference: AdamW, lr 1e-3)
    discriminator  softplus(D(fake_t)) + softplus(-D(real_t)), the generator re-run without gradient as the
                   reference does, real and fake noised with the same t ~ U{0..999} and noise.

y_T is pure noise at t = 999 as at inference (`osdiff.noise_input: noise`); `noised-latent` trains as the
reference does, on the ground-truth latent noised to t = 999. The reference encodes with a posterior sample
in training (`osdiff.sample_posterior`). The engine's AdamW and gradient clipping apply to every phase (the
reference does not clip the aux step; with the quantile loss's small gradients this rarely matters);
`bitsandbytes`' 8-bit AdamW is the paper's optimizer: the engine uses it when bitsandbytes is installed
(`optim.eight_bit: auto`; `always` requires it, `never` keeps torch's AdamW).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...train.build import trainable_parameters
from ...train.tasks import TrainingTask
from ..pipeline import OneStepPipeline
from .codec import NOISE_INPUTS, OSDiffCodec
from .control import OSDiffGenerator
from .discriminator import discriminator_loss, generator_loss, noised_pair
from .model import discriminator_for

PHASES = ("generator", "aux", "discriminator")


class OSDiffTraining(nn.Module):
    def __init__(self, pipeline: OneStepPipeline, config: dict[str, Any]) -> None:
        super().__init__()
        if not isinstance(pipeline.codec, OSDiffCodec) or not isinstance(pipeline.generator, OSDiffGenerator):
            raise ConfigError("the osdiff task trains an OSDiff pipeline (OSDiffCodec + OSDiffGenerator)")
        self.settings, self.lr = config["osdiff"], config["optim"]["lr"]
        self.pipeline = pipeline
        pipeline.codec.noise_input = self.settings["noise_input"]
        if self.settings["sample_posterior"]:
            pipeline.autoencoder.sample_posterior, pipeline.autoencoder.sample_seed = True, None
        self.discriminator = discriminator_for(pipeline.generator).requires_grad_(True)
        self.quantiles = pipeline.codec.z_model.quantiles

    def phases(self, step: int) -> tuple[str, ...]:
        return PHASES

    def learning_rate(self, phase: str, default: float) -> float:
        return {"aux": self.settings["aux_lr"], "discriminator": self.settings["discriminator_lr"]}.get(phase, default)

    def optimizer_parameters(self) -> dict[str, list[nn.Parameter]]:
        generator = [p for p in trainable_parameters(self.pipeline) if p is not self.quantiles]
        return {
            "generator": generator,
            "aux": [self.quantiles],
            "discriminator": trainable_parameters(self.discriminator),
        }

    def _context(self, out: Any) -> torch.Tensor:
        context = self.pipeline.conditioning(out.codec)
        assert context is not None
        return context

    def generator_step(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        s = self.settings
        out = self.pipeline(batch, decode=False)
        y0, y_r = out.latent.float(), out.latent_hat.float()
        latent = F.mse_loss(y_r, y0)
        guide = F.mse_loss(out.codec.extras["c_latent"].float(), y0)
        bpp = out.bpp.mean()
        _, fake_t, t = noised_pair(y0, y_r)
        adversarial = generator_loss(self.discriminator(fake_t, t, self._context(out)))
        loss = s["latent"] * latent + s["rate"] * bpp + s["guide"] * guide + s["adversarial"] * adversarial
        logs = {"loss": loss, "latent_mse": latent, "bpp": bpp, "guide_mse": guide, "adversarial": adversarial}
        return loss, {k: float(v.detach()) for k, v in logs.items()}

    def aux_step(self) -> tuple[torch.Tensor, dict[str, float]]:
        loss = self.pipeline.codec.aux_loss()
        return loss, {"aux_loss": float(loss.detach())}

    def discriminator_step(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            out = self.pipeline(batch, decode=False)
        real_t, fake_t, t = noised_pair(out.latent.float(), out.latent_hat.float())
        context = self._context(out).detach()
        loss = discriminator_loss(self.discriminator(fake_t, t, context), self.discriminator(real_t, t, context))
        return loss, {"discriminator": float(loss.detach())}

    def forward(self, batch: torch.Tensor, step: int, phase: str) -> tuple[torch.Tensor, dict[str, float]]:
        if phase == "generator":
            return self.generator_step(batch)
        if phase == "aux":
            return self.aux_step()
        return self.discriminator_step(batch)


def make_osdiff_task(config: dict[str, Any], pipeline: OneStepPipeline, dataset: Any) -> OSDiffTraining:
    return OSDiffTraining(pipeline, config)


def check_osdiff_task(config: dict[str, Any]) -> None:
    if config["data"]["latents"]:
        raise ConfigError("the osdiff task encodes images itself: data.latents must be false")
    if config["osdiff"]["noise_input"] not in NOISE_INPUTS:
        raise ConfigError(f"osdiff.noise_input must be one of {', '.join(NOISE_INPUTS)}")


TASK = TrainingTask(
    "osdiff",
    make_osdiff_task,
    sections={
        "osdiff": {
            "latent": 1.0,  # lambda_1: |y0 - y_r|^2
            "rate": 1.0,  # lambda_2: bits per pixel (the paper's two models: 1 and 2)
            "guide": 2.0,  # lambda_3: |y0 - c_latent|^2
            "adversarial": 0.01,  # lambda_4: the latent discriminator's generator loss
            "noise_input": "noise",  # noise (as at inference) | noised-latent (as the reference trains)
            "sample_posterior": True,  # the reference trains on a VAE posterior sample
            "aux_lr": 1e-3,
            "discriminator_lr": 1e-4,
        }
    },
    check=check_osdiff_task,
)
