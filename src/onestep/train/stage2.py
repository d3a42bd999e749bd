"""Stage II (reference digest §5.10, §7.3): distribution-matching distillation with a diffusion GAN.

Per step, on one batch:
- `generator` phase (every `gen_update_ratio` steps): the pipeline runs with gradients (codec frozen);
      loss = dm * L_DM + gan_generator * softplus(-D(noised x)) + pixel * (L1 + perceptual) + rate * bpp
  L_DM: t ~ U[min_t, max_t], x_t = noised generator latent x; with g = (x0_fake - x0_real) / mean|x - x0_real|,
  L_DM = 0.5 * MSE(x, stopgrad(x - g)). The real score (frozen teacher) uses classifier-free guidance
  when a conditional embedding is given.
- `guidance` phase (every step): on the detached generator latents,
      loss = MSE(fake prediction, its target) + gan_guidance * [softplus(D(fake)) + softplus(-D(real))]
  with t ~ U[0, T) and `real` the autoencoder latent of the ground truth.

D is a classifier head on mid features: of the fake score network (DMD2, `discriminator: fake_unet`) or of
a separate UNet encoder initialised from the teacher (OSDiff's latent discriminator, `latent_unet`; real
and fake are noised with the same noise and t there, as in OSDiff).

Conditioning: there are no captions or text encoder here. The score networks see `uncond` (and `cond`,
for CFG) from `stage2.embeddings`, a safetensors file of context tensors (e.g. CLIP("") computed
elsewhere); without it, a zero context (one token of zeros), i.e. the networks' null conditioning.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..errors import ConfigError, ModelError
from ..methods.pipeline import OneStepPipeline
from .build import trainable_parameters
from .losses import PixelLoss, make_perceptual
from .score import ClassifierHead, Denoiser, load_unet
from .tasks import TrainingTask


def _load_embeddings(path: str | None, dim: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    if not path:
        return torch.zeros(1, 1, dim), None
    try:
        tensors = load_file(path)
    except Exception as e:  # missing or damaged file
        raise ModelError(f"cannot read stage2.embeddings {path}: {e}") from None
    if "uncond" not in tensors:
        raise ConfigError(f"stage2.embeddings {path} must hold an `uncond` tensor (tokens x {dim})")
    shaped = {k: (v[None] if v.dim() == 2 else v[:1]).float() for k, v in tensors.items()}
    for key, value in shaped.items():
        if value.shape[-1] != dim:
            raise ConfigError(f"stage2.embeddings[{key!r}] has width {value.shape[-1]}, the teacher expects {dim}")
    return shaped["uncond"], shaped.get("cond")


class Stage2(nn.Module):
    def __init__(self, pipeline: OneStepPipeline, config: dict[str, Any]) -> None:
        super().__init__()
        s2, loss = config["stage2"], config["loss"]
        self.settings, self.lr = s2, config["optim"]["lr"]
        self.pipeline = pipeline
        if config["model"]["trainable"] is None:
            pipeline.codec.requires_grad_(False)  # the reference freezes the codec in stage II
        if not trainable_parameters(pipeline):
            raise ConfigError("stage 2 has nothing to train in the generator (check model.trainable)")
        teacher = load_unet(s2["teacher"])
        schedule = (s2["prediction"], s2["beta_start"], s2["beta_end"], s2["timesteps"])
        if teacher.config.in_channels != pipeline.autoencoder.latent_channels:
            raise ConfigError(
                f"the teacher UNet takes {teacher.config.in_channels} latent channels, "
                f"the autoencoder has {pipeline.autoencoder.latent_channels}"
            )
        fake = copy.deepcopy(teacher) if s2["fake_from_teacher"] else type(teacher).from_config(teacher.config)
        self.real = Denoiser(teacher.requires_grad_(False).eval(), *schedule)
        self.fake = Denoiser(fake.requires_grad_(True).train(), *schedule)
        if s2["discriminator"] == "latent_unet":
            self.discriminator_unet: Denoiser | None = Denoiser(copy.deepcopy(teacher).requires_grad_(True), *schedule)
        else:
            self.discriminator_unet = None
        channels = teacher.config.block_out_channels[-1]
        self.head = ClassifierHead(channels, s2["head_downsample"])
        uncond, cond = _load_embeddings(s2["embeddings"], teacher.config.cross_attention_dim)
        self.register_buffer("uncond", uncond, persistent=False)
        self.register_buffer("cond", cond, persistent=False)
        network = make_perceptual(loss["perceptual_net"], loss["lpips_dir"]) if loss["perceptual"] else None
        self.pixel = PixelLoss(loss["l1"], loss["perceptual"], network)
        self._latents: tuple[torch.Tensor, torch.Tensor] | None = None

    def phases(self, step: int) -> tuple[str, ...]:
        ratio = max(1, int(self.settings["gen_update_ratio"]))
        return ("generator", "guidance") if step % ratio == 0 else ("guidance",)

    def learning_rate(self, phase: str, default: float) -> float:
        return float(self.settings["guidance_lr"] or default) if phase == "guidance" else default

    def optimizer_parameters(self) -> dict[str, list[nn.Parameter]]:
        guidance = [*trainable_parameters(self.fake), *trainable_parameters(self.head)]
        if self.discriminator_unet is not None:
            guidance += trainable_parameters(self.discriminator_unet)
        return {"generator": trainable_parameters(self.pipeline), "guidance": guidance}

    def _context(self, batch: int, conditional: bool = False) -> torch.Tensor:
        embedding = self.cond if conditional else self.uncond
        return embedding.expand(batch, -1, -1)

    def _random_t(self, x: torch.Tensor, low: int, high: int) -> torch.Tensor:
        return torch.randint(low, high + 1, (x.shape[0],), device=x.device)

    def distribution_matching(self, x: torch.Tensor) -> torch.Tensor:
        s2 = self.settings
        with torch.no_grad():
            t = self._random_t(x, s2["min_t"], s2["max_t"])
            x_t = self.fake.add_noise(x, torch.randn_like(x), t)
            context = self._context(x.shape[0])
            x0_fake = self.fake.x0(x_t, self.fake(x_t, t, context), t)
            prediction = self.real(x_t, t, context)
            if self.cond is not None and s2["real_guidance"] != 1:
                conditional = self.real(x_t, t, self._context(x.shape[0], conditional=True))
                prediction = prediction + s2["real_guidance"] * (conditional - prediction)
            x0_real = self.real.x0(x_t, prediction, t)
            scale = (x.float() - x0_real).abs().mean(dim=(1, 2, 3), keepdim=True)
            gradient = torch.nan_to_num((x0_fake - x0_real) / scale)
        return 0.5 * F.mse_loss(x.float(), (x.float() - gradient).detach())

    def _logits(self, latent: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        network = self.discriminator_unet if self.discriminator_unet is not None else self.fake
        x_t = network.add_noise(latent, noise, t)
        return self.head(network.mid_features(x_t, t, self._context(latent.shape[0]))).float()

    def generator_loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        s2 = self.settings
        out = self.pipeline(batch)
        x = out.latent_hat
        self._latents = (x.detach(), out.latent.detach())
        dm = self.distribution_matching(x)
        t = self._random_t(x, 0, self.fake.timesteps - 1)
        gan = F.softplus(-self._logits(x, torch.randn_like(x), t)).mean()
        pixel, pixel_logs = self.pixel(out.reconstruction, batch)
        bpp = out.bpp.mean()
        loss = s2["dm"] * dm + s2["gan_generator"] * gan + s2["pixel"] * pixel + s2["rate"] * bpp
        logs = {"loss": loss.item(), "dm": dm.item(), "gan_generator": gan.item(), "bpp": bpp.item()}
        return loss, {**logs, **pixel_logs}

    def guidance_loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        if self._latents is None:  # not a generator step: the generator only produces latents
            with torch.no_grad():
                out = self.pipeline(batch, decode=False)
            self._latents = (out.latent_hat.detach(), out.latent.detach())
        x, real = self._latents
        self._latents = None
        t = self._random_t(x, 0, self.fake.timesteps - 1)
        noise = torch.randn_like(x)
        x_t = self.fake.add_noise(x, noise, t)
        prediction = self.fake(x_t, t, self._context(x.shape[0]))
        fake_loss = F.mse_loss(prediction.float(), self.fake.target(x, noise, t).float())
        t = self._random_t(x, 0, self.fake.timesteps - 1)
        noise = torch.randn_like(x)
        logits_fake, logits_real = self._logits(x, noise, t), self._logits(real, noise, t)
        classifier = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
        loss = fake_loss + self.settings["gan_guidance"] * classifier
        return loss, {"guidance_loss": loss.item(), "fake_score": fake_loss.item(), "classifier": classifier.item()}

    def forward(self, batch: torch.Tensor, step: int, phase: str) -> tuple[torch.Tensor, dict[str, float]]:
        if phase == "generator":
            return self.generator_loss(batch)
        return self.guidance_loss(batch)


def make_stage2(config: dict[str, Any], pipeline: OneStepPipeline, dataset: Any) -> Stage2:
    return Stage2(pipeline, config)


def check_stage2(config: dict[str, Any]) -> None:
    if config["data"]["latents"]:
        raise ConfigError("stage 2 trains in pixel space: data.latents must be false")
    if not config["stage2"]["teacher"]:
        raise ConfigError("stage 2 needs stage2.teacher: a diffusers UNet2DConditionModel folder")
    if config["stage2"]["discriminator"] not in ("fake_unet", "latent_unet"):
        raise ConfigError("stage2.discriminator must be 'fake_unet' or 'latent_unet'")


TASK = TrainingTask(
    "stage2",
    make_stage2,
    sections={
        "stage2": {
            "teacher": None,  # diffusers UNet2DConditionModel folder (the real score network, frozen)
            "fake_from_teacher": True,  # initialise the fake score network from the teacher (reference: SD1.5)
            "embeddings": None,  # optional safetensors with `uncond` (and `cond`) context tensors; zeros otherwise
            "prediction": "epsilon",  # epsilon | v_prediction
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "timesteps": 1000,
            "min_t": 20,
            "max_t": 640,
            "real_guidance": 1.75,
            "dm": 1.0,
            "gan_generator": 1e-3,
            "gan_guidance": 1e-2,
            "pixel": 0.625,  # weight of (l1 + perceptual) in stage II
            "rate": 0.0,
            "gen_update_ratio": 10,
            "discriminator": "fake_unet",  # fake_unet (DMD2 head on the fake net's mid features) | latent_unet
            "head_downsample": True,  # the 4x4 stride-2 and stride-4 convs of the head; False for tiny latents
            "guidance_lr": None,  # defaults to optim.lr
        }
    },
    check=check_stage2,
)
