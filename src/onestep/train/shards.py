"""Compact training shards: a few large files of concatenated records plus one `index.json`.

Image shards hold encoded image files (WebP or JPEG bytes, as written); latent shards hold float16
latents of a frozen autoencoder, C x h x w each. The index lists, for every record, its shard, byte
offset, byte length, shape and source name, so a reader opens a shard once and slices it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, ImageError

INDEX_NAME = "index.json"
FORMAT = "onestep-shards"
VERSION = 1


@dataclass(frozen=True)
class Record:
    shard: int
    offset: int
    length: int
    shape: tuple[int, ...]  # (H, W) for images, (C, h, w) for latents
    name: str


class ShardWriter:
    """Append records to `shard-NNNNN.bin` files of about `shard_bytes` each; `close()` writes the index."""

    def __init__(self, folder: str | Path, kind: str, shard_bytes: int = 16 << 20, **meta: Any) -> None:
        if kind not in ("image", "latent"):
            raise ValueError(f"unknown shard kind {kind!r}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if (self.folder / INDEX_NAME).exists():
            raise ConfigError(f"{self.folder} already holds shards; choose an empty output folder")
        self.kind, self.shard_bytes, self.meta = kind, shard_bytes, meta
        self.records: list[Record] = []
        self.shards: list[str] = []
        self._file: Any = None
        self._size = 0

    def _open_next(self) -> None:
        if self._file is not None:
            self._file.close()
        name = f"shard-{len(self.shards):05d}.bin"
        self.shards.append(name)
        self._file = open(self.folder / name, "wb")  # closed by _open_next / close
        self._size = 0

    def add(self, data: bytes, shape: tuple[int, ...], name: str) -> None:
        if self._file is None or (self._size and self._size + len(data) > self.shard_bytes):
            self._open_next()
        self._file.write(data)
        self.records.append(Record(len(self.shards) - 1, self._size, len(data), tuple(shape), name))
        self._size += len(data)

    def close(self) -> Path:
        if self._file is not None:
            self._file.close()
        index = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            **self.meta,
            "shards": self.shards,
            "records": [[r.shard, r.offset, r.length, list(r.shape), r.name] for r in self.records],
        }
        path = self.folder / INDEX_NAME
        path.write_text(json.dumps(index) + "\n")
        return path

    def total_bytes(self) -> int:
        return sum((self.folder / s).stat().st_size for s in self.shards)


def is_shard_folder(folder: str | Path) -> bool:
    return (Path(folder) / INDEX_NAME).is_file()


class ShardReader:
    """Random access to the records of one shard folder. Shard files are memory-mapped lazily, so a
    reader can be copied into data-loader workers cheaply."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        path = self.folder / INDEX_NAME
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read shard index {path}: {e}") from None
        if index.get("format") != FORMAT or index.get("version") != VERSION:
            raise ConfigError(f"{path} is not a version-{VERSION} {FORMAT} index")
        self.kind: str = index["kind"]
        self.meta = {k: v for k, v in index.items() if k not in ("records", "shards")}
        self.shards: list[str] = index["shards"]
        self.records = [Record(s, o, n, tuple(shape), name) for s, o, n, shape, name in index["records"]]
        self._maps: dict[int, np.memmap] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}}

    def raw(self, i: int) -> bytes:
        r = self.records[i]
        if r.shard not in self._maps:
            self._maps[r.shard] = np.memmap(self.folder / self.shards[r.shard], dtype=np.uint8, mode="r")
        return self._maps[r.shard][r.offset : r.offset + r.length].tobytes()

    def image(self, i: int) -> Image.Image:
        try:
            return Image.open(io.BytesIO(self.raw(i))).convert("RGB")
        except OSError as e:
            raise ImageError(f"record {self.records[i].name!r} in {self.folder} is not a readable image: {e}") from None

    def latent(self, i: int) -> torch.Tensor:
        array = np.frombuffer(self.raw(i), dtype=np.float16).reshape(self.records[i].shape)
        return torch.from_numpy(array.astype(np.float32))


def latent_bytes(latent: torch.Tensor) -> bytes:
    """One latent (C x h x w) as float16 bytes in C order, as `ShardReader.latent` reads it."""
    return latent.detach().to(torch.float16).cpu().contiguous().numpy().tobytes()
