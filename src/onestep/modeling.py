"""Models whose constructor arguments are their config (as in diffusers).

Every `ModelMixin` subclass records the arguments it was built with. `save_pretrained(folder)` writes
`config.json` (the class name and those arguments, nested models included) and `model.safetensors`;
`from_pretrained(folder)` rebuilds the model from the config and loads the weights strictly.
Weights are only ever read with safetensors: nothing is unpickled.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import os
import pkgutil
import re
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import ModelError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CLASS_KEY = "_class"

_REGISTRY: dict[str, type[ModelMixin]] = {}
T = TypeVar("T", bound="ModelMixin")


def _to_json(value: Any) -> Any:
    if isinstance(value, ModelMixin):
        return value.to_config()
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"constructor argument of type {type(value).__name__} cannot go into a config")


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and CLASS_KEY in value:
        return model_from_config(value)
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    return value


# Packages whose modules define model classes. Classes register when their module is imported.
PART_PACKAGES = ("onestep.autoencoders", "onestep.codecs", "onestep.generators", "onestep.methods")


def _import_defining_module(name: str) -> None:
    """Import the part module that defines class `name`, found by its source text, so that loading a
    small model pays only for the modules it uses."""
    definition = re.compile(rf"^class {re.escape(name)}\b", re.MULTILINE)
    for package_name in PART_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            source = Path(package.__path__[0], f"{module.name}.py")
            if source.is_file() and definition.search(source.read_text(encoding="utf-8")):
                importlib.import_module(f"{package_name}.{module.name}")
                return


def model_from_config(config: dict[str, Any]) -> ModelMixin:
    """Build a (randomly initialised) model from a config dict written by `to_config`."""
    config = dict(config)
    name = config.pop(CLASS_KEY, None)
    if isinstance(name, str) and name not in _REGISTRY:
        _import_defining_module(name)
    if name not in _REGISTRY:
        raise ModelError(f"unknown model class {name!r} in config (known: {', '.join(sorted(_REGISTRY))})")
    cls = _REGISTRY[name]
    try:
        return cls(**{k: _from_json(v) for k, v in config.items()})
    except TypeError as e:
        raise ModelError(f"config does not fit {name}: {e}") from None


class ModelMixin(nn.Module):
    """Base class: constructor arguments become `self.config`; save/load as safetensors folders."""

    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def wrapped(self: ModelMixin, *args: Any, **kw: Any) -> None:
            outermost = not getattr(self, "_recording_config", False)
            if outermost:
                object.__setattr__(self, "_recording_config", True)
            try:
                init(self, *args, **kw)
            finally:
                if outermost:
                    object.__setattr__(self, "_recording_config", False)
            if outermost:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop("self")
                object.__setattr__(self, "config", arguments)

        cls.__init__ = wrapped  # type: ignore[method-assign]

    def to_config(self) -> dict[str, Any]:
        return {CLASS_KEY: type(self).__name__, **_to_json(self.config)}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def fingerprint(self) -> bytes:
        """8 bytes identifying the weights (and thus which streams this model can decode)."""
        return state_dict_fingerprint(self.state_dict())

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        _atomic(folder / WEIGHTS_NAME, lambda p: save_file(tensors, p, metadata={"format": "pt"}))
        text = json.dumps(self.to_config(), indent=2) + "\n"
        _atomic(folder / CONFIG_NAME, lambda p: Path(p).write_text(text))
        return folder

    @classmethod
    def from_pretrained(cls: type[T], folder: str | os.PathLike[str], device: str = "cpu") -> T:
        folder = Path(folder)
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise ModelError(f"{folder} is not a model folder: {path.name} is missing")
        model = model_from_config(read_json(config_path))
        if not isinstance(model, cls):
            raise ModelError(f"{folder} holds a {type(model).__name__}, not a {cls.__name__}")
        try:
            state = load_file(str(weights_path), device=device)
        except Exception as e:  # safetensors raises its own types for damaged files
            raise ModelError(f"cannot read {weights_path}: {e}") from None
        load_state_dict_strict(model, state, source=str(weights_path))
        return model.to(device).eval()


def read_json(path: Path) -> Any:
    """A JSON file's content, or a one-line ModelError."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {path}: {e}") from None


def shape_mismatches(
    expected: dict[str, tuple[int, ...]], given: dict[str, tuple[int, ...]], shown: int = 3
) -> list[str]:
    """How two key -> shape maps differ, one readable phrase per kind of difference (empty if they agree)."""

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")

    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(k for k in set(expected) & set(given) if tuple(given[k]) != tuple(expected[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({some(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({some(unexpected)})")
    if wrong:
        quoted = [f"{k} is {tuple(given[k])}, expected {tuple(expected[k])}" for k in wrong[:shown]]
        problems.append(f"{len(wrong)} with wrong shapes ({'; '.join(quoted)}{', ...' if len(wrong) > shown else ''})")
    return problems


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load with strict keys and shapes, reporting mismatches as one readable ModelError."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = shape_mismatches(own, {k: tuple(v.shape) for k, v in state.items()})
    if problems:
        raise ModelError(f"weights in {source} do not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def state_dict_fingerprint(state: dict[str, torch.Tensor]) -> bytes:
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.digest()[:8]


def _atomic(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a model folder should be readable like any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
