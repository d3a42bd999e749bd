"""Models whose constructor arguments are their config (as in diffusers).

Every `ModelMixin` subclass records the arguments it was built with. `save_pretrained(folder)` writes
`config.json` (the class name and those arguments, nested models included) and `model.safetensors`;
`from_pretrained(folder)` rebuilds the model from the config and loads the weights strictly.
Weights are only ever read with safetensors: nothing is unpickled.

`config.json` carries `_format` (CONFIG_FORMAT) and each part's class as `module:Class`, so loading imports
exactly the modules it needs; configs written before (bare class names, no `_format`) still load. The weights'
fingerprint (which streams a model can decode) is computed once, when a folder is written, and stored in the
safetensors header; loading trusts it, `onestep verify MODEL` recomputes it.
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
import struct
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import save_file
from torch import nn

from .errors import ModelError
from .files import atomic_path, write_atomic
from .partial_load import load_weights, parameters_on_meta, read_header

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CLASS_KEY = "_class"
FORMAT_KEY = "_format"
CONFIG_FORMAT = 2  # 1: bare class names, no fingerprint in the weights file
FINGERPRINT_METADATA = "onestep_fingerprint"

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
    small model pays only for the modules it uses. Method packages (`methods/<name>/`) are searched too."""
    from .methods.registry import method_packages  # methods registered at run time (ONESTEP_METHODS)

    definition = re.compile(rf"^class {re.escape(name)}\b", re.MULTILINE)
    for package_name in (*PART_PACKAGES, *method_packages()):
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(getattr(package, "__path__", [])):
            folder = Path(package.__path__[0], module.name)
            sources = sorted(folder.glob("*.py")) if module.ispkg else [folder.with_suffix(".py")]
            for source in sources:
                if source.is_file() and definition.search(source.read_text(encoding="utf-8")):
                    inner = f".{source.stem}" if module.ispkg else ""
                    importlib.import_module(f"{package_name}.{module.name}{inner}")
                    return


def _resolve_class(name: Any) -> str | None:
    """`module:Class` -> import the module and return `Class`; a bare name (format 1) is looked up by its source."""
    if not isinstance(name, str):
        return None
    module, _, name = name.rpartition(":")
    if module and name not in _REGISTRY:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the class may have moved since the folder was written: look for it by name below
    if name not in _REGISTRY:
        _import_defining_module(name)
    return name


def model_from_config(config: dict[str, Any]) -> ModelMixin:
    """Build a (randomly initialised) model from a config dict written by `to_config`."""
    config = dict(config)
    config.pop(FORMAT_KEY, None)
    name = _resolve_class(config.pop(CLASS_KEY, None))
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
        cls = type(self)
        return {CLASS_KEY: f"{cls.__module__}:{cls.__qualname__}", **_to_json(self.config)}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _weights_version(self) -> tuple[int, ...]:
        # Tensor version counters move with every in-place update (optimizer steps, load_state_dict).
        return tuple(v for t in self.state_dict(keep_vars=True).values() for v in (t.data_ptr(), t._version))

    def fingerprint(self) -> bytes:
        """8 bytes identifying the weights (and thus which streams this model can decode). Hashed again only
        when a weight changed since the last time (or since loading: the folder stores it)."""
        version = self._weights_version()
        cached = getattr(self, "_fingerprint_cache", None)
        if cached is None or cached[0] != version:
            cached = (version, state_dict_fingerprint(self.state_dict()))
            object.__setattr__(self, "_fingerprint_cache", cached)
        return cached[1]

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        metadata = {"format": "pt", FINGERPRINT_METADATA: self.fingerprint().hex()}
        with atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        write_atomic(folder / CONFIG_NAME, config_bytes(self))
        return folder

    @classmethod
    def from_pretrained(
        cls: type[T],
        folder: str | os.PathLike[str],
        device: str = "cpu",
        decode_only: bool = False,
        render_dtype: torch.dtype | None = None,
    ) -> T:
        """Rebuild the model from `config.json` and read its weights, one tensor at a time, into it.

        `decode_only`: leave out the weights only a sender needs (`sender_only_prefixes`; they stay on the
        meta device, and `compress` refuses) when the file stores its fingerprint (else all are needed to
        compute it). `render_dtype`: the pipeline's `set_render_dtype`, applied before the weights are read
        when the file stores its fingerprint (each weight then arrives in its final dtype)."""
        folder = Path(folder)
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise ModelError(f"{folder} is not a model folder: {path.name} is missing")
        config = read_json(config_path)
        with parameters_on_meta():
            model = model_from_config(config)
        if not isinstance(model, cls):
            raise ModelError(f"{folder} holds a {type(model).__name__}, not a {cls.__name__}")
        stored = stored_fingerprint(weights_path)
        skip = model.sender_only_prefixes() if decode_only and stored is not None else ()
        if render_dtype is not None and stored is not None:  # the stored fingerprint stands for the weights
            object.__setattr__(model, "_fingerprint_cache", (model._weights_version(), stored))
            model.set_render_dtype(render_dtype)  # type: ignore[attr-defined]
        load_weights(model, weights_path, device, skip)
        object.__setattr__(model, "_skipped_weights", skip)
        model = model.eval()
        if stored is not None:
            object.__setattr__(model, "_fingerprint_cache", (model._weights_version(), stored))
        elif render_dtype is not None:  # the fingerprint is of the float32 weights: set_render_dtype keeps it
            model.set_render_dtype(render_dtype)  # type: ignore[attr-defined]
        return model

    def sender_only_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of weights that only compressing uses (none by default)."""
        return ()

    @property
    def skipped_weights(self) -> tuple[str, ...]:
        """The prefixes `from_pretrained(decode_only=True)` left out (empty for a whole model)."""
        return getattr(self, "_skipped_weights", ())


def stored_fingerprint(weights_path: str | os.PathLike[str]) -> bytes | None:
    """The fingerprint written into a weights file's header by `save_pretrained` (None for older files), read
    without loading the tensors."""
    try:
        with open(weights_path, "rb") as f:
            _, metadata, _ = read_header(f, os.fstat(f.fileno()).st_size)
        value = metadata.get(FINGERPRINT_METADATA)
        return bytes.fromhex(value) if isinstance(value, str) and len(value) == 16 else None
    except (OSError, ValueError, struct.error, AttributeError):
        return None


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


class FingerprintHasher:
    """The weights' fingerprint, fed one tensor at a time in sorted key order (as a file is streamed)."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def update(self, key: str, tensor: torch.Tensor) -> None:
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        self.digest.update(f"{key}:{flat.dtype}:{tuple(flat.shape)};".encode())
        self.digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")

    def value(self) -> bytes:
        return self.digest.digest()[:8]


def state_dict_fingerprint(state: dict[str, torch.Tensor]) -> bytes:
    hasher = FingerprintHasher()
    for key in sorted(state):
        hasher.update(key, state[key])
    return hasher.value()


def config_bytes(model: ModelMixin) -> bytes:
    """The `config.json` of a model folder."""
    return (json.dumps({FORMAT_KEY: CONFIG_FORMAT, **model.to_config()}, indent=2) + "\n").encode()
