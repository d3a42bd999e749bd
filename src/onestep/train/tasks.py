"""Training tasks: what `task:` in a training config names.

A `TrainingTask` owns its config sections (their defaults, hence their keys and value types), the checks
of the combinations it cannot train, and how it is built. `load_config` adds the sections of the config's
task to the common ones, so a key of another task's section is an unknown key.

    task: stage1            # a task of the model's method (model.method), else a generic one (TASKS)

The generic tasks are Stage I (`stage1.TASK`) and Stage II (`stage2.TASK`); a method lists the tasks it
trains with in its registry entry (`Method.tasks`), its own or these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..methods.registry import get_method, resolve

if TYPE_CHECKING:  # torch is imported by the task's module, not to read a config
    from torch import nn

# name -> "module:attribute" of the TrainingTask (imported only when a config names it)
TASKS: dict[str, str] = {"stage1": "onestep.train.stage1:TASK", "stage2": "onestep.train.stage2:TASK"}
LEGACY_STAGES = {1: "stage1", 2: "stage2"}  # configs written before tasks said `stage: 1` or `stage: 2`


@dataclass(frozen=True)
class TrainingTask:
    """`build(config, pipeline, dataset)` returns the task module (see `engine`); `check(config)` raises a
    ConfigError for settings it cannot train; `sections` are its config sections with their defaults."""

    name: str
    build: Callable[[dict[str, Any], nn.Module, Any], nn.Module]
    sections: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sections", MappingProxyType(dict(self.sections)))


def find_task(name: str, method: str | None = None) -> TrainingTask:
    """The task `name` of `method` (when the model is built from a registered method), else a generic task."""
    if method is not None:
        task = get_method(method).task(name)  # a method trains with the tasks it lists
    elif name in TASKS:
        task = resolve(TASKS[name])
    else:
        raise ConfigError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    if not isinstance(task, TrainingTask):
        raise ConfigError(f"task {name!r} is a {type(task).__name__}, not a TrainingTask")
    return task
