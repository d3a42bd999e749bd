"""The registry of methods: what the CLI, `bench`, `train` and `eval` know about each method.

A method is one package (`methods/<name>/`) whose `__init__.py` defines `METHOD = Method(...)` and imports
nothing heavy: everything in a `Method` is named by a "module:attribute" string and imported only when used,
so listing the methods (`onestep import --help`) costs no torch import.

    architectures  name -> "module:function" returning a `OneStepPipeline` with random weights ("full", "tiny")
    importer       a module with `add_arguments(name, parser)` and `run(name, args) -> int` (a CLI command module):
                   `onestep import NAME ...` and its alias `onestep import-NAME ...`
    tasks          training task name -> "module:attribute" of a `train.tasks.TrainingTask` (`task:` in a config)
    configs        training config preset name -> YAML file, relative to the method's package folder
    bench          bench preset name -> `onestep bench pipeline` settings (arch, size, dtypes, mode, ...)
    stream_formats file format name -> a module with `SUFFIX`, `DESCRIPTION`, `compress_file(model, source,
                   target, reconstruction, overwrite)` and `decompress_file(model, source, target, overwrite,
                   decode_tile)`: `onestep compress --to NAME`, `onestep decompress --from NAME` (e.g. a
                   reference implementation's own files)

The methods shipped with onestep are found, not listed: every package under `onestep/methods/` whose
`__init__.py` defines `METHOD` (`builtin_method_modules`). Others register at run time:
`register_method(Method(...))` in-process, or, for any process (the CLI included), the modules listed in the
`ONESTEP_METHODS` environment variable (comma-separated, importable from `sys.path`), each defining `METHOD`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError

PLUGINS_VARIABLE = "ONESTEP_METHODS"


def resolve(reference: str) -> Any:
    """ "package.module:attribute" -> the attribute, importing the module; a one-line ConfigError if absent."""
    module_name, sep, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute) if sep else module
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{reference!r} cannot be imported: {e}") from None


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Method:
    """One method's entry. `package` is the module whose folder holds the config presets (default: the
    module that defines the entry)."""

    name: str
    description: str
    architectures: Mapping[str, str]
    importer: str | None = None
    tasks: Mapping[str, str] = field(default_factory=dict)
    configs: Mapping[str, str] = field(default_factory=dict)
    bench: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    stream_formats: Mapping[str, str] = field(default_factory=dict)
    package: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"method name {self.name!r} must be letters, digits, '-' or '_'")
        if not self.architectures:
            raise ValueError(f"method {self.name!r} registers no architecture")
        for attribute in ("architectures", "tasks", "configs", "bench", "stream_formats"):
            object.__setattr__(self, attribute, _frozen(getattr(self, attribute)))

    def architecture(self, arch: str) -> Callable[..., Any]:
        """The function building architecture `arch` (random weights)."""
        if arch not in self.architectures:
            known = ", ".join(sorted(self.architectures))
            raise ConfigError(f"method {self.name!r} has no architecture {arch!r} (it has: {known})")
        return resolve(self.architectures[arch])

    def build(self, arch: str, **kwargs: Any) -> Any:
        """A `OneStepPipeline` of architecture `arch` with random weights."""
        return self.architecture(arch)(**kwargs)

    def task(self, name: str) -> Callable[..., Any]:
        if name not in self.tasks:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise ConfigError(f"method {self.name!r} has no training task {name!r} (it has: {known})")
        return resolve(self.tasks[name])

    def config_path(self, preset: str) -> Path:
        """The YAML file of training config `preset`."""
        if preset not in self.configs:
            known = ", ".join(sorted(self.configs)) or "none"
            raise ConfigError(f"method {self.name!r} has no training config {preset!r} (it has: {known})")
        package = resolve(self.package) if self.package else None
        if package is None or not getattr(package, "__file__", None):
            raise ConfigError(f"method {self.name!r} names no package to find its configs in")
        return Path(package.__file__).parent / self.configs[preset]

    def bench_preset(self, preset: str) -> dict[str, Any]:
        if preset not in self.bench:
            known = ", ".join(sorted(self.bench)) or "none"
            raise ConfigError(f"method {self.name!r} has no bench preset {preset!r} (it has: {known})")
        return dict(self.bench[preset])


_METHODS: dict[str, Method] = {}
_loaded: set[str] = set()  # modules whose METHOD was registered (built-ins and plugins)


def register_method(method: Method, replace: bool = False) -> Method:
    """Add `method` to the registry; registering another method under a taken name is an error unless
    `replace`. Returns the method (so that a module can write `METHOD = register_method(Method(...))`)."""
    existing = _METHODS.get(method.name)
    if existing is not None and existing is not method and not replace:
        raise ConfigError(f"a method named {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    _METHODS.pop(name, None)


def _load_module(module_name: str) -> None:
    if module_name in _loaded:
        return
    module = resolve(module_name)
    method = getattr(module, "METHOD", None)
    if method is not None:
        if not isinstance(method, Method):
            raise ConfigError(f"{module_name}.METHOD is a {type(method).__name__}, not a Method")
        if method.package is None:
            object.__setattr__(method, "package", module_name)  # where its config presets live
        register_method(method)
    _loaded.add(module_name)


def builtin_method_modules() -> list[str]:
    """The packages under `onestep/methods/` (a new method is a new folder: nothing lists it)."""
    folder = Path(__file__).parent
    return sorted(f"{__package__}.{child.name}" for child in folder.iterdir() if (child / "__init__.py").is_file())


def plugin_modules() -> list[str]:
    return [m.strip() for m in os.environ.get(PLUGINS_VARIABLE, "").split(",") if m.strip()]


def methods() -> dict[str, Method]:
    """Every registered method by name: the built-ins, the `ONESTEP_METHODS` plugins, and those registered
    with `register_method`."""
    for module_name in (*builtin_method_modules(), *plugin_modules()):
        _load_module(module_name)
    return dict(_METHODS)


def stream_formats() -> dict[str, str]:
    """Every registered method's file formats: format name -> its module (see `Method.stream_formats`)."""
    found: dict[str, str] = {}
    for method in methods().values():
        for name, module in method.stream_formats.items():
            if found.setdefault(name, module) != module:
                raise ConfigError(f"two methods register the stream format {name!r}")
    return found


def method_packages() -> list[str]:
    """The packages of the registered methods (where the model loader looks for their classes)."""
    return sorted({m.package for m in methods().values() if m.package})


def get_method(name: str) -> Method:
    known = methods()
    if name not in known:
        raise ConfigError(f"unknown method {name!r} (known: {', '.join(sorted(known))})")
    return known[name]


def build_pipeline(name: str, arch: str = "full", **kwargs: Any) -> Any:
    """`get_method(name).build(arch, **kwargs)`: a pipeline of a registered method, random weights."""
    return get_method(name).build(arch, **kwargs)
