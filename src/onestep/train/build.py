"""Build the pipeline a training config describes and decide which of its parameters train."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..errors import ConfigError, ModelError
from ..methods.pipeline import OneStepPipeline
from ..methods.registry import get_method, resolve
from ..modeling import WEIGHTS_NAME, ModelMixin, model_from_config


def build_pipeline(spec: dict[str, Any]) -> OneStepPipeline:
    """`spec` is the config's `model` section: one of `config`, `pretrained` or `factory`, or else `method`
    (+ `arch`) to build a registered method's architecture. With one of the first three, `method` only says
    whose training tasks apply (e.g. stage II of a pretrained stage-I model)."""
    given = [k for k in ("config", "pretrained", "factory") if spec.get(k)]
    if len(given) > 1 or not (given or spec.get("method")):
        raise ConfigError(f"model: give exactly one of config, pretrained, factory, method (got {given or 'none'})")
    kwargs = spec.get("kwargs") or {}
    if spec.get("config"):
        model = model_from_config(spec["config"])
    elif spec.get("pretrained"):
        model = ModelMixin.from_pretrained(spec["pretrained"]).train()
    elif spec.get("factory"):
        model = resolve(str(spec["factory"]))(**kwargs)
    else:
        method = get_method(str(spec["method"]))
        model = method.build(spec.get("arch") or next(iter(method.architectures)), **kwargs)
    if not isinstance(model, OneStepPipeline):
        raise ConfigError(f"the model must be a OneStepPipeline, got {type(model).__name__}")
    if spec.get("init"):
        load_init_weights(model, spec["init"])
    set_trainable(model, spec.get("trainable"), spec.get("frozen") or [])
    return model


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        raise ModelError(f"model.init: {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # damaged or unsafe files raise many types
        raise ModelError(f"model.init: cannot read {path}: {e}") from None
    if not isinstance(state, dict):
        raise ModelError(f"model.init: {path} does not hold a state dict")
    return state


def load_init_weights(model: torch.nn.Module, entries: Any) -> dict[str, int]:
    """Load the tensors of each entry that fit the model (name and shape); returns loaded counts per file.

    An entry is a path (model folder, .safetensors, or a torch state dict read with weights_only) or
    {path, prefix}: `prefix` is put in front of the file's names, so a plain SD UNet state dict loads into
    `generator.unet.`; a `x.weight` that the model wraps with LoRA goes to `x.base_layer.weight`."""
    own = model.state_dict()
    loaded: dict[str, int] = {}
    for entry in entries if isinstance(entries, list) else [entries]:
        path, prefix = (entry, "") if isinstance(entry, str) else (entry.get("path"), entry.get("prefix", ""))
        if not path:
            raise ConfigError(f"model.init entry {entry!r} names no path")
        usable = {}
        for key, value in _read_state(Path(path)).items():
            name = prefix + key
            if name not in own:
                head, _, leaf = name.rpartition(".")
                name = f"{head}.base_layer.{leaf}"
            if name in own and own[name].shape == value.shape:
                usable[name] = value
        if not usable:
            raise ModelError(f"model.init: no tensor in {path} fits this model (prefix {prefix!r})")
        model.load_state_dict(usable, strict=False)
        loaded[str(path)] = len(usable)
    return loaded


def set_trainable(model: torch.nn.Module, trainable: list[str] | None, frozen: list[str]) -> None:
    """With `trainable` patterns, exactly the matching parameters train; without, each part keeps its own
    flags (e.g. a LoRA generator's frozen base) and the autoencoder is frozen. `frozen` patterns apply last."""
    names = dict(model.named_parameters())
    if trainable is not None:
        for name, p in names.items():
            p.requires_grad_(any(fnmatch.fnmatchcase(name, pattern) for pattern in trainable))
    else:
        for name, p in names.items():
            if name.startswith("autoencoder."):
                p.requires_grad_(False)
    for name, p in names.items():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in frozen):
            p.requires_grad_(False)
    if not any(p.requires_grad for p in names.values()):
        raise ConfigError("no parameter of the model is trainable with these model.trainable/frozen patterns")


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]
