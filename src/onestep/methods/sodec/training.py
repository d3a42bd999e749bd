"""SODEC's training: rate annealing in three stages, then a GAN fine-tune (digest §2.6-2.7), as training tasks.

    stage1    E, H_a, P and D_a: d(x, x_f) + lambda_start * bpp          (a high rate: a rich latent)
    stage2    E, H_a, P frozen; H_s, T_s, D_a, F_p, LoRA: d(x, x_hat)    (distortion only)
    stage3    all of them: d(x, x_hat) + lambda(t) * bpp + align * MSE(x, x_f), lambda raised level by level
    finetune  stage 3's loss at lambda_end + gan.weight * L_G, with a pixel-space conditional PatchGAN
              (HiFiC's, conditioned on y_hat) or OSDiff's latent discriminator (`gan.discriminator`)

F, the UNet's base and the SD decoder never train. d = mse * MSE + perceptual * P on images in [0, 1];
P is `loss.perceptual_net` of the common section (LPIPS-VGG when its weights exist, else the offline
EfficientNet-Lite0 distance), weighted by `loss.perceptual`. Where P (the entropy model) trains, the
factorized prior's quantiles have their own optimizer (phase `aux`), as CompressAI's. The paper gives none of
the weights: `mse` = 150 is HiFiC's k_M = 0.075 * 2^-5 on [0, 255] images, expressed on [0, 1]; `align` = 150
weighs the alignment MSE like the distortion's; lambda's levels are geometric from `start` to `end`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, ModelError
from ...train.build import trainable_parameters
from ...train.losses import make_perceptual
from ...train.tasks import TrainingTask
from ..osdiff.discriminator import LatentDiscriminator, discriminator_loss, generator_loss, noised_pair
from ..pipeline import OneStepPipeline
from .codec import COMPRESSION_PARTS, Y_HAT, SODECCodec
from .guidance import FIDELITY_IMAGE, FidelityGuidance

STAGES = ("stage1", "stage2", "stage3", "finetune")
# Trainable parts per stage, as parameter-name prefixes of the pipeline (".lora_" marks the UNet's adapters).
_COMPRESSION = tuple(f"codec.{part}." for part in COMPRESSION_PARTS)
_DIFFUSION_PATH = ("codec.side_synthesis.", "codec.transform.", "conditioner.projector.", ".lora_")
_FIDELITY = ("conditioner.fidelity_decoder.",)
TRAINED: dict[str, tuple[str, ...]] = {
    "stage1": (*_COMPRESSION, *_FIDELITY),
    "stage2": (*_DIFFUSION_PATH, *_FIDELITY),
    "stage3": (*_COMPRESSION, *_DIFFUSION_PATH, *_FIDELITY),
    "finetune": (*_COMPRESSION, *_DIFFUSION_PATH, *_FIDELITY),
}
QUANTILES = "codec.z_model.quantiles"
DISCRIMINATORS = ("patchgan", "latent")

SECTION: dict[str, Any] = {
    "mse": 150.0,
    "align": 150.0,
    # lambda on bpp: stage1 uses start, stage3 `levels` geometric levels start..end of `steps_per_level` steps
    # each (from `begin`), finetune uses end
    "rate": {"start": 0.5, "end": 8.0, "levels": 4, "steps_per_level": 20000, "begin": 0},
    "aux_lr": 1.0e-3,
    "unet": "lora",  # lora: the UNet trains through its adapters; full: all of it (a UNet without a pretrained base)
    "backbone_weights": "auto",  # auto: F's published weights if found (EfficientNet-Lite0); none; or a path
    "gan": {
        "weight": 0.15,  # HiFiC's beta
        "discriminator": "patchgan",  # patchgan | latent
        "lr": 1.0e-4,
        "latent_encoder": None,  # latent: a diffusers SD VAE (folder or .safetensors) for the real latents
    },
}


def rate_weight(rate: dict[str, Any], stage: str, step: int) -> float:
    """lambda at `step` of `stage` (0 in stage 2)."""
    start, end = float(rate["start"]), float(rate["end"])
    if stage == "stage1":
        return start
    if stage == "stage2":
        return 0.0
    if stage == "finetune":
        return end
    levels = int(rate["levels"])
    level = min(max(step - int(rate["begin"]), 0) // int(rate["steps_per_level"]), levels - 1)
    return start * (end / start) ** (level / max(levels - 1, 1))


class PatchDiscriminator(nn.Module):
    """HiFiC's conditional PatchGAN: y_hat (1x1 conv to 12 channels, nearest upsampling to the image) beside
    the image, four 4x4 stride-2 convs with LeakyReLU 0.2, one logit per patch."""

    def __init__(self, y_channels: int, widths: tuple[int, ...] = (64, 128, 256, 512), condition: int = 12):
        super().__init__()
        self.condition = nn.Conv2d(y_channels, condition, 1)
        layers: list[nn.Module] = []
        cin = 3 + condition
        for width in widths:
            layers += [nn.Conv2d(cin, width, 4, 2, padding=1), nn.LeakyReLU(0.2)]
            cin = width
        layers.append(nn.Conv2d(cin, 1, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        condition = F.interpolate(self.condition(y_hat.detach()), size=image.shape[-2:], mode="nearest")
        return self.layers(torch.cat([image, condition], dim=1)).flatten(1)


def _latent_encoder(source: str | None, pipeline: OneStepPipeline) -> nn.Module:
    """The frozen SD VAE encoder giving the latent discriminator its real latents ("tiny": random, tests)."""
    from ...autoencoders.kl import KLAutoencoder

    if source is None:
        raise ConfigError("gan.discriminator latent needs gan.latent_encoder (the SD VAE, or tiny for tests)")
    if source == "tiny":
        encoder = KLAutoencoder.tiny(attention_window=None)
    else:
        encoder = KLAutoencoder.from_diffusers(source, attention_window=None)
    return encoder.requires_grad_(False).eval()


class SODECTraining(nn.Module):
    def __init__(self, pipeline: OneStepPipeline, config: dict[str, Any], stage: str) -> None:
        super().__init__()
        if not isinstance(pipeline.codec, SODECCodec) or not isinstance(pipeline.conditioner, FidelityGuidance):
            raise ConfigError("the SODEC tasks train SODEC models (model.method: sodec)")
        self.pipeline, self.stage = pipeline, stage
        self.settings = config["sodec"]
        loss = config["loss"]
        self.perceptual_weight = float(loss["perceptual"])
        self.perceptual = make_perceptual(loss["perceptual_net"], loss["lpips_dir"]) if loss["perceptual"] else None
        weights = self.settings["backbone_weights"]
        backbone = pipeline.conditioner.backbone
        if weights != "none" and hasattr(backbone, "load_pretrained"):
            try:
                backbone.load_pretrained(None if weights == "auto" else weights)
            except ModelError:
                if weights != "auto":
                    raise
        parts = TRAINED[stage]
        if self.settings["unet"] == "full" and stage != "stage1":
            parts = (*parts, "generator.")
        for name, p in pipeline.named_parameters():
            p.requires_grad_(any(part in name if part.startswith(".") else name.startswith(part) for part in parts))
        self.discriminator: nn.Module | None = None
        self._encoder: list[nn.Module] = []  # a list keeps the frozen encoder out of parameters and checkpoints
        if stage == "finetune":
            kind = self.settings["gan"]["discriminator"]
            if kind == "patchgan":
                self.discriminator = PatchDiscriminator(pipeline.codec.y_channels)
            else:
                unet = pipeline.generator.config["unet"]
                heads = unet["attention_head_dim"]
                head_channels = unet["block_out_channels"][0] // (heads[0] if isinstance(heads, list) else heads)
                self.discriminator = LatentDiscriminator(unet=unet, head_channels=head_channels)
                self._encoder.append(_latent_encoder(self.settings["gan"]["latent_encoder"], pipeline))

    # --- the engine's interface ----------------------------------------------------------------------------

    def phases(self, step: int) -> tuple[str, ...]:
        phases = ("main",)
        if self.stage != "stage2":
            phases += ("aux",)
        if self.discriminator is not None:
            phases += ("discriminator",)
        return phases

    def learning_rate(self, phase: str, default: float) -> float:
        return {"aux": self.settings["aux_lr"], "discriminator": self.settings["gan"]["lr"]}.get(phase, default)

    def optimizer_parameters(self) -> dict[str, list[nn.Parameter]]:
        named = dict(self.pipeline.named_parameters())
        groups = {"main": [p for n, p in named.items() if p.requires_grad and n != QUANTILES]}
        if "aux" in self.phases(0):
            groups["aux"] = [named[QUANTILES]]
        if self.discriminator is not None:
            groups["discriminator"] = trainable_parameters(self.discriminator)
        return groups

    # --- losses --------------------------------------------------------------------------------------------

    def distortion(self, image: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        mse = F.mse_loss(image.float(), target.float()) * 0.25  # on [0, 1] images
        loss = self.settings["mse"] * mse
        logs = {"mse": mse.item()}
        if self.perceptual is not None:
            perceptual = self.perceptual(image.float(), target.float()).mean()
            loss = loss + self.perceptual_weight * perceptual
            logs["perceptual"] = perceptual.item()
        return loss, logs

    def _latent_logits(
        self, fake_latent: torch.Tensor, batch: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        encoder = self._encoder[0].to(batch.device)
        with torch.no_grad():
            real_latent = encoder.encode(batch.float())
        real_t, fake_t, t = noised_pair(real_latent, fake_latent)
        assert self.discriminator is not None
        context = context.detach()
        return self.discriminator(fake_t, t, context), self.discriminator(real_t, t, context)

    def forward(self, batch: torch.Tensor, step: int, phase: str = "main") -> tuple[torch.Tensor, dict[str, float]]:
        if phase == "aux":
            aux = self.pipeline.codec.aux_loss()
            return aux, {"aux": aux.item()}
        if phase == "discriminator":
            return self._discriminator_step(batch)
        weight = rate_weight(self.settings["rate"], self.stage, step)
        logs: dict[str, float] = {"lambda": weight}
        if self.stage == "stage1":  # the compression module and D_a alone: the UNet is not run
            codec = self.pipeline.codec
            out = codec(batch, self.pipeline.autoencoder.encode(batch))
            bpp = (out.total_bits() / (batch.shape[-2] * batch.shape[-1])).mean()
            loss, logs_d = self.distortion(self.pipeline.conditioner.fidelity_image(out), batch)
            loss = loss + weight * bpp
            logs.update(logs_d, bpp=bpp.item(), loss=loss.item())
            return loss, logs
        out = self.pipeline(batch)
        bpp = out.bpp.mean()
        loss, logs_d = self.distortion(out.reconstruction, batch)
        logs.update(logs_d, bpp=bpp.item())
        if self.stage != "stage2":
            align = F.mse_loss(out.codec.extras[FIDELITY_IMAGE].float(), batch.float()) * 0.25
            loss = loss + weight * bpp + self.settings["align"] * align
            logs["align"] = align.item()
        if self.discriminator is not None:
            if isinstance(self.discriminator, PatchDiscriminator):
                fake_logits = self.discriminator(out.reconstruction, out.codec.extras[Y_HAT])
            else:
                context = self.pipeline.conditioning(out.codec)
                fake_logits = self._latent_logits(out.latent_hat, batch, context)[0]
            gan = generator_loss(fake_logits)
            loss = loss + self.settings["gan"]["weight"] * gan
            logs["gan_g"] = gan.item()
        logs["loss"] = loss.item()
        return loss, logs

    def _discriminator_step(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        assert self.discriminator is not None
        with torch.no_grad():
            out = self.pipeline(batch, decode=isinstance(self.discriminator, PatchDiscriminator))
        if isinstance(self.discriminator, PatchDiscriminator):
            y_hat = out.codec.extras[Y_HAT]
            fake, real = self.discriminator(out.reconstruction, y_hat), self.discriminator(batch, y_hat)
        else:
            with torch.no_grad():
                context = self.pipeline.conditioning(out.codec)
            fake, real = self._latent_logits(out.latent_hat, batch, context)
        loss = discriminator_loss(fake, real)
        return loss, {"gan_d": loss.item()}


def _check(config: dict[str, Any]) -> None:
    if config["data"]["latents"]:
        raise ConfigError("SODEC codes pixels: data.latents must be false")
    settings = config["sodec"]
    rate = settings["rate"]
    if not 0 < rate["start"] <= rate["end"]:
        raise ConfigError("sodec.rate: 0 < start <= end (lambda rises from start to end)")
    if rate["levels"] < 1 or rate["steps_per_level"] < 1:
        raise ConfigError("sodec.rate.levels and steps_per_level must be >= 1")
    if settings["unet"] not in ("lora", "full"):
        raise ConfigError("sodec.unet must be lora or full")
    if settings["gan"]["discriminator"] not in DISCRIMINATORS:
        raise ConfigError(f"sodec.gan.discriminator must be one of {', '.join(DISCRIMINATORS)}")


def _task(stage: str) -> TrainingTask:
    def build(config: dict[str, Any], pipeline: OneStepPipeline, dataset: Any) -> SODECTraining:
        return SODECTraining(pipeline, config, stage)

    return TrainingTask(stage, build, sections={"sodec": SECTION}, check=_check)


STAGE1, STAGE2, STAGE3, FINETUNE = (_task(stage) for stage in STAGES)
