"""Our own models as an evaluated codec: each model folder is one rate point, run through `onestep.api`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import ModelError
from ..modeling import CONFIG_NAME, WEIGHTS_NAME


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


class ModelCodec:
    """Same interface as `BaselineCodec`; settings are model folders. One model is loaded at a time."""

    setting_name = "model"

    def __init__(self, name: str, folders: list[str | os.PathLike[str]], mode: str = "normal", device: str = "cpu"):
        if not folders:
            raise ModelError(f"model codec {name!r} needs at least one model folder")
        self.name = name
        self.label = name
        self.mode = mode
        self.device = device
        self.description = f"onestep {__version__} model folders, mode {mode!r}"
        self.settings = tuple(str(Path(f)) for f in folders)
        self._digests = {setting: folder_digest(Path(setting)) for setting in self.settings}
        self._loaded: tuple[str, Any] | None = None

    def setting_label(self, setting: str) -> str:
        return Path(setting).name

    def cache_key(self, setting: str) -> str:
        return f"onestep model {self._digests[setting]}|mode={self.mode}"

    def _model(self, setting: str) -> Any:
        from .. import api

        if self._loaded is None or self._loaded[0] != setting:
            self._loaded = None  # free the previous model before loading the next
            self._loaded = (setting, api.load_model(setting, device=self.device))
        return self._loaded[1]

    def encode(self, setting: str, image: torch.Tensor) -> bytes:
        from .. import api

        return api.compress(self._model(setting), image.to(self.device), mode=self.mode)

    def decode(self, setting: str, data: bytes) -> torch.Tensor:
        from .. import api

        return api.decompress(self._model(setting), data).cpu()
