"""On-disk cache of evaluation results, keyed by codec (library version and options included),
setting and image content hash, so that re-running a report only computes what is new.

Layout under the cache root:
    <hash of codec key and setting>/key.txt            the key in clear, for people
    <hash of codec key and setting>/<image hash>.bin   the compressed file
    <hash of codec key and setting>/<image hash>.json  {"encode_s", "decode_s", "metrics": {...}}
    <hash of codec key and setting>/<image hash>.safetensors   FID/256 patch features per extractor
    reference/<image hash>.safetensors                 the same features of the original
Features are stored because distribution metrics need all patches of a rate point at once.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, save

from ..files import write_atomic


@dataclass
class CachedItem:
    data: bytes | None  # the compressed file
    record: dict[str, Any]  # encode_s, decode_s, metrics
    features: dict[str, torch.Tensor]


class ResultCache:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def _folder(self, codec_key: str) -> Path:
        folder = self.root / hashlib.sha256(codec_key.encode()).hexdigest()[:20]
        if not (folder / "key.txt").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(folder / "key.txt", codec_key.encode() + b"\n")
        return folder

    def load(self, codec_key: str, image_digest: str) -> CachedItem:
        """What is cached for this codec setting and image (possibly nothing: empty record)."""
        base = self._folder(codec_key) / image_digest
        stream = base.with_suffix(".bin")
        data = stream.read_bytes() if stream.is_file() else None
        record = _read_record(base.with_suffix(".json"))
        return CachedItem(data, record, _read_features(base.with_suffix(".safetensors")))

    def save(self, codec_key: str, image_digest: str, item: CachedItem) -> None:
        base = self._folder(codec_key) / image_digest
        if item.data is not None:
            write_atomic(base.with_suffix(".bin"), item.data)
        write_atomic(base.with_suffix(".json"), (json.dumps(item.record, indent=1) + "\n").encode())
        _write_features(base.with_suffix(".safetensors"), item.features)

    def reference_features(self, image_digest: str) -> dict[str, torch.Tensor]:
        return _read_features(self.root / "reference" / f"{image_digest}.safetensors")

    def save_reference_features(self, image_digest: str, features: dict[str, torch.Tensor]) -> None:
        (self.root / "reference").mkdir(parents=True, exist_ok=True)
        _write_features(self.root / "reference" / f"{image_digest}.safetensors", features)


def _read_record(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:  # a damaged cache entry is recomputed, never trusted
        return {}


def _read_features(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        return {}
    try:
        return load(path.read_bytes())
    except Exception:  # a damaged cache entry is recomputed, never trusted
        return {}


def _write_features(path: Path, features: dict[str, torch.Tensor]) -> None:
    if features:
        write_atomic(path, save({k: v.contiguous() for k, v in features.items()}))
