"""Training configuration: a YAML file merged onto `DEFAULTS`, then `key.path=value` overrides.

Unknown keys are errors (a typo must not silently train the wrong thing), except inside the free-form
sections in `FREE` (a model's nested config, factory arguments). See `configs/train/*.yaml`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "output_dir": "runs/train",
    "stage": 1,
    "model": {
        # exactly one of: a nested `model_from_config` dict, a model folder, or "module:function" (+ kwargs)
        "config": None,
        "pretrained": None,
        "factory": None,
        "kwargs": {},
        "init": None,  # optional safetensors file or model folder whose weights are loaded (non-strict) first
        "trainable": None,  # fnmatch patterns over parameter names; None: the parts' own flags, autoencoder frozen
        "frozen": [],  # patterns frozen after `trainable` is applied
    },
    "data": {
        "train": [],  # image folders, image-shard folders or (with latents: true) latent-shard folders
        "latents": False,  # train in latent space on precomputed latents (no pixel losses, no decoder)
        "crop": 256,  # the big square crop every item is cut to (pixels; latent pixels when latents: true)
        "size": 128,  # training size after the step's `resize` or `crop`
        "flip": True,
        "schedule": {"resize": 0.2, "crop": 0.5, "full": 0.3, "full_batch_divisor": 4},
        "batch_size": 8,
        "num_workers": 0,
    },
    "optim": {"lr": 5e-5, "betas": [0.9, 0.999], "weight_decay": 0.01, "eps": 1e-8, "warmup": 500, "grad_clip": 5.0},
    "train": {
        "steps": 1000,
        "mixed_precision": "no",  # "no" or "bf16" (bf16 autocast, as the reference's use_fp16)
        "log_every": 50,
        "checkpoint_every": 1000,
        "keep_checkpoints": 3,
        "progress": True,
        "export": True,  # write the trained pipeline with save_pretrained to OUTPUT_DIR/model at the end
        "threads": 0,  # torch CPU threads (0: torch's default); 1 is often fastest for small models on busy CPUs
    },
    "loss": {
        "l1": 1.0,
        "perceptual": 1.0,
        "perceptual_net": "auto",  # auto | lpips | efficientnet | none
        "lpips_dir": None,  # folder with the LPIPS-VGG weight files (else the usual search places)
        "latent_mse": 0.0,
        # latent mode only: decode latent_hat with the pipeline's decoder and apply the pixel losses against this
        # frozen autoencoder's decoding of the true latent (`taef2` or a folder), e.g. to train a new decoder head
        "teacher_decoder": None,
        # lambda(t) = start + clip((t - begin) / warmup_steps, 0, 1)^2 * (end - start)
        "rate": {"start": 1e-4, "end": 4.6, "warmup_steps": 4000, "begin": 0},
    },
    "semantic": {
        "weight": 0.0,  # reference: 0.001
        "codebook_mse": 0.01,
        "teacher": "auto",  # auto | maskgit | efficientnet_kmeans
        "vqgan_weights": None,  # MaskGIT VQGAN (maskgit-vqgan-imagenet-f16-256) weights, if you have them
        "kmeans": {"codes": 256, "fit_images": 64, "iterations": 20},  # the substitute teacher's codebook
        "head": {"dim": 768, "heads": 12, "blocks": 3, "window": 16, "mlp_ratio": 4},
    },
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
        "discriminator": "fake_unet",  # fake_unet (DMD2 head on the fake net's mid features) | latent_unet (OSDiff)
        "head_downsample": True,  # the reference head's 4x4 stride-2 and stride-4 convs; False for tiny latents
        "guidance_lr": None,  # defaults to optim.lr
    },
    "validation": {"folder": None, "every": 0, "max_images": 24, "max_side": 0},
}

FREE = {("model", "config"), ("model", "kwargs")}


def merge(base: dict[str, Any], update: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    for key, value in update.items():
        where = ".".join((*path, str(key)))
        if key not in base:
            raise ConfigError(f"unknown config key {where!r} (known here: {', '.join(sorted(base))})")
        if isinstance(base[key], dict) and (*path, key) not in FREE:
            if not isinstance(value, dict):
                raise ConfigError(f"config key {where!r} must be a mapping, got {value!r}")
            merge(base[key], value, (*path, key))
        else:
            base[key] = value
    return base


def parse_override(text: str) -> dict[str, Any]:
    """`a.b.c=value` -> {"a": {"b": {"c": value}}}, the value read as YAML (numbers, lists, null...)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {e}") from None
    nested: dict[str, Any] = {}
    node = nested
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level")
        merge(config, data)
    for text in overrides or []:
        merge(config, parse_override(text))
    check(config)
    return config


def check(config: dict[str, Any]) -> None:
    """Reject combinations that cannot train, with a one-line reason."""
    if config["stage"] not in (1, 2):
        raise ConfigError(f"stage must be 1 or 2, got {config['stage']!r}")
    data = config["data"]
    if isinstance(data["train"], str):
        data["train"] = [data["train"]]
    if not data["train"]:
        raise ConfigError("data.train lists no training folders")
    if data["size"] > data["crop"]:
        raise ConfigError(f"data.size ({data['size']}) cannot exceed data.crop ({data['crop']})")
    if data["batch_size"] < 1:
        raise ConfigError("data.batch_size must be >= 1")
    if data["latents"]:
        if data["schedule"]["resize"]:
            raise ConfigError("latent training cannot resize batches: set data.schedule.resize to 0")
        if config["stage"] == 2 or config["semantic"]["weight"]:
            raise ConfigError("latent training (data.latents) supports stage 1 without semantic distillation only")
    if config["train"]["mixed_precision"] not in ("no", "bf16"):
        raise ConfigError("train.mixed_precision must be 'no' or 'bf16'")
    if config["stage"] == 2 and not config["stage2"]["teacher"]:
        raise ConfigError("stage 2 needs stage2.teacher: a diffusers UNet2DConditionModel folder")
    if config["stage2"]["discriminator"] not in ("fake_unet", "latent_unet"):
        raise ConfigError("stage2.discriminator must be 'fake_unet' or 'latent_unet'")


def dump_config(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)
