"""Our own models as an evaluated codec, run through `onestep.api`.

Each model folder is one rate point, unless its codec has rate control (`qualities`): then every quality
is a rate point (`api.compress(model, image, quality=q)`). A folder may hold `training.json` with
{"loss_networks": ["efficientnet-lite0", ...]}: the networks whose features its training losses used, so
the report can mark the metrics built on those networks. Without the file that is unknown, and said so.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import ModelError
from ..modeling import CONFIG_NAME, WEIGHTS_NAME

TRAINING_NAME = "training.json"
Setting = tuple[str, int | None]  # (model folder, quality or None)


def folder_digest(folder: Path) -> str:
    """Hash of the config and weights: a retrained model never reuses cached results."""
    digest = hashlib.sha256()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        path = folder / name
        if not path.is_file():
            raise ModelError(f"{folder} is not a model folder: {name} is missing")
        with path.open("rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()[:20]


def read_loss_networks(folder: Path) -> list[str] | None:
    """The networks the model's training losses used, from `training.json`; None if the folder has none."""
    path = folder / TRAINING_NAME
    if not path.is_file():
        return None
    try:
        networks = json.loads(path.read_text()).get("loss_networks")
    except (ValueError, AttributeError):
        networks = None
    if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
        raise ModelError(f'{path} must be a JSON object with "loss_networks": a list of network names')
    return networks


class ModelCodec:
    """Same interface as `BaselineCodec`; settings are (model folder, quality). One model is loaded at a time."""

    setting_name = "model"

    def __init__(self, name: str, folders: list[str | os.PathLike[str]], mode: str = "normal", device: str = "cpu"):
        if not folders:
            raise ModelError(f"model codec {name!r} needs at least one model folder")
        self.name = name
        self.label = name
        self.mode = mode
        self.device = device
        self.description = f"onestep {__version__} model folders, mode {mode!r}"
        paths = [str(Path(f)) for f in folders]
        self._digests = {path: folder_digest(Path(path)) for path in paths}
        self._loaded: tuple[str, Any] | None = None
        settings: list[Setting] = []
        for path in paths:
            qualities = self._model(path).qualities
            settings += [(path, q) for q in qualities] if qualities else [(path, None)]
        self.settings = tuple(settings)
        self._single_folder = len(paths) == 1
        networks = [read_loss_networks(Path(path)) for path in paths]
        self.loss_networks: list[str] | None = None
        self.loss_networks_note = "from training.json"
        if any(n is None for n in networks):
            missing = [p for p, n in zip(paths, networks) if n is None]
            self.loss_networks_note = f"unknown: no {TRAINING_NAME} in {', '.join(missing)}"
        else:
            self.loss_networks = sorted({n for found in networks if found for n in found})

    def setting_label(self, setting: Setting) -> str:
        folder, quality = setting
        parts = ([] if self._single_folder else [Path(folder).name]) + ([] if quality is None else [f"q={quality}"])
        return " ".join(parts) or "model"

    def cache_key(self, setting: Setting) -> str:
        folder, quality = setting
        return f"onestep model {self._digests[folder]}|mode={self.mode}" + ("" if quality is None else f"|q={quality}")

    def _model(self, folder: str) -> Any:
        from .. import api

        if self._loaded is None or self._loaded[0] != folder:
            self._loaded = None  # free the previous model before loading the next
            self._loaded = (folder, api.load_model(folder, device=self.device))
        return self._loaded[1]

    def warm_up(self, setting: Setting, image: torch.Tensor) -> None:
        """Load the model and run it once untimed, so timings leave out loading and first-call costs."""
        self.decode(setting, self.encode(setting, image))

    def encode(self, setting: Setting, image: torch.Tensor) -> bytes:
        from .. import api

        folder, quality = setting
        model = self._model(folder)
        if quality is None:
            return api.compress(model, image.to(self.device), mode=self.mode)
        return api.compress(model, image.to(self.device), mode=self.mode, quality=quality)

    def decode(self, setting: Setting, data: bytes) -> torch.Tensor:
        from .. import api

        return api.decompress(self._model(setting[0]), data).cpu()
