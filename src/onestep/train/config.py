"""Training configuration: a YAML file merged onto `DEFAULTS` plus the sections of its task, then
`key.path=value` overrides.

`task:` names a `TrainingTask` (`tasks.py`): the model's method's task when `model.method` is given, else a
generic one; the task brings its own config sections. Unknown keys are errors (a typo must not silently
train the wrong thing), and so are values of another type than the default's (an int where a float is
expected is fine), except inside the free-form sections in `FREE` (a model's nested config, architecture
arguments). See `configs/train/*.yaml` and each method's `configs/`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..methods.registry import get_method, methods
from .tasks import LEGACY_STAGES, find_task

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "output_dir": "runs/train",
    "task": "stage1",
    "model": {
        # exactly one of: a nested `model_from_config` dict, a model folder, a registered method (+ arch), or
        # "module:function"; `kwargs` go to the method's architecture or the factory
        "config": None,
        "pretrained": None,
        "method": None,
        "arch": None,  # default: the method's first architecture
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
    # eight_bit: "auto" uses bitsandbytes' 8-bit AdamW when it is installed, "always" requires it, "never" not
    "optim": {
        "lr": 5e-5,
        "betas": [0.9, 0.999],
        "weight_decay": 0.01,
        "eps": 1e-8,
        "warmup": 500,
        "grad_clip": 5.0,
        "eight_bit": "auto",
    },
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
    "validation": {"folder": None, "every": 0, "max_images": 24, "max_side": 0},
}

FREE = {("model", "config"), ("model", "kwargs")}


def _type_error(default: Any, value: Any) -> str | None:
    """What `value` should have been, if its type does not fit the default's (None: it fits)."""
    if default is None or value is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, (int, float)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(default, float):
            return None if number else "a number"
        return None if number and isinstance(value, int) else "an integer"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, list):
        return None if isinstance(value, (list, str)) else "a list"
    return None


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
            expected = _type_error(base[key], value)
            if expected is not None:
                raise ConfigError(f"config key {where!r} must be {expected}, got {value!r}")
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


def _task_of(layers: list[dict[str, Any]]) -> tuple[str, str | None]:
    """(task name, model.method) as the YAML and the overrides give them, the last layer winning."""
    task, method = DEFAULTS["task"], None
    for layer in layers:
        if "stage" in layer:  # configs written before tasks: `stage: 1` or `stage: 2`
            stage = layer.pop("stage")
            if stage not in LEGACY_STAGES:
                raise ConfigError(f"stage must be 1 or 2, got {stage!r} (or name a task: task: stage1)")
            layer.setdefault("task", LEGACY_STAGES[stage])
        task = layer.get("task", task)
        model = layer.get("model")
        if isinstance(model, dict) and "method" in model:
            method = model["method"]
    if not isinstance(task, str):
        raise ConfigError(f"task must be a task's name, got {task!r}")
    return task, method


def task_defaults(task: str = DEFAULTS["task"], method: str | None = None) -> dict[str, Any]:
    """A fresh copy of the defaults of a config for `task` (of `method`): the common sections and the task's."""
    return copy.deepcopy({**DEFAULTS, **find_task(task, method).sections, "task": task})


def config_file(text: str) -> Path:
    """A config argument: a YAML file, or METHOD:PRESET for one of a registered method's training configs."""
    method, sep, preset = text.partition(":")
    if sep and not Path(text).exists() and method in methods():
        return get_method(method).config_path(preset)
    return Path(text)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The config of YAML file (or METHOD:PRESET) `path` with `overrides`, checked."""
    layers = []
    if path is not None:
        path = config_file(str(path))
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level")
        layers.append(data)
    layers += [parse_override(text) for text in overrides or []]
    name, method = _task_of(layers)
    task = find_task(name, method)
    config = task_defaults(name, method)
    for layer in layers:
        merge(config, layer)
    check(config)
    if task.check is not None:
        task.check(config)
    return config


def check(config: dict[str, Any]) -> None:
    """Reject combinations that no task can train, with a one-line reason (tasks check their own)."""
    data = config["data"]
    if isinstance(data["train"], str):
        data["train"] = [data["train"]]
    if not data["train"]:
        raise ConfigError("data.train lists no training folders")
    if data["size"] > data["crop"]:
        raise ConfigError(f"data.size ({data['size']}) cannot exceed data.crop ({data['crop']})")
    if data["batch_size"] < 1:
        raise ConfigError("data.batch_size must be >= 1")
    if data["latents"] and data["schedule"]["resize"]:
        raise ConfigError("latent training cannot resize batches: set data.schedule.resize to 0")
    if config["train"]["mixed_precision"] not in ("no", "bf16"):
        raise ConfigError("train.mixed_precision must be 'no' or 'bf16'")


def dump_config(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)
