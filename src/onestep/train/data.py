"""Training data: image folders (recursive, any common format), image shards and latent shards.

Every random choice is derived from (seed, epoch, position), never from a worker's RNG, so a run
resumed at batch N sees exactly the batches an uninterrupted run would have seen, whatever the
number of workers. Items are the big square crops of the reference (resize-if-small, random crop,
random flip); the per-step resolution schedule (`augment.py`) then works on whole batches.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError
from ..images import IMAGE_SUFFIXES, AlphaDroppedWarning, read_image
from .shards import ShardReader, is_shard_folder


def list_images(folder: str | Path) -> list[Path]:
    """All image files under `folder`, recursively, in a stable (sorted) order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"data folder {folder} does not exist")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_rgb(path: str | Path) -> Image.Image:
    """An image file as 8-bit RGB, read by `images.read_image` as compress reads it (EXIF orientation,
    16-bit rounding, alpha dropped)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlphaDroppedWarning)
        pixels = read_image(path)
    return Image.fromarray(pixels.permute(1, 2, 0).numpy(), "RGB")


def resize_short_side(image: Image.Image, size: int, only_if_smaller: bool = False) -> Image.Image:
    w, h = image.size
    short = min(w, h)
    if short == size or (only_if_smaller and short >= size):
        return image
    scale = size / short
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    return image.resize(new, Image.Resampling.BICUBIC, reducing_gap=3.0)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> 3 x H x W float in [-1, 1]."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 127.5 - 1


def _random_crop(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ConfigError(f"item of size {w}x{h} is smaller than the crop size {size}")
    top = int(torch.randint(h - size + 1, (1,), generator=generator))
    left = int(torch.randint(w - size + 1, (1,), generator=generator))
    return x[..., top : top + size, left : left + size]


class TrainingImages(Dataset):
    """Images from folders and/or image-shard folders, as `crop` x `crop` tensors in [-1, 1].

    Items are addressed by `(index, seed)`: the seed drives the crop and flip of that item."""

    def __init__(self, sources: Sequence[str | Path], crop: int, flip: bool = True) -> None:
        self.crop, self.flip = crop, flip
        self.items: list[tuple[ShardReader | None, int | Path]] = []
        for source in sources:
            if is_shard_folder(source):
                reader = ShardReader(source)
                if reader.kind != "image":
                    raise ConfigError(f"{source} holds {reader.kind} shards; this run trains on images")
                self.items += [(reader, i) for i in range(len(reader))]
            else:
                self.items += [(None, p) for p in list_images(source)]
        if not self.items:
            raise ConfigError(f"no training images found in {', '.join(map(str, sources))}")

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Image.Image:
        reader, key = self.items[index]
        return reader.image(key) if reader is not None else load_rgb(key)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        index, seed = item
        generator = torch.Generator().manual_seed(seed)
        x = to_tensor(resize_short_side(self.load(index), self.crop, only_if_smaller=True))
        x = _random_crop(x, self.crop, generator)
        if self.flip and torch.rand((), generator=generator) < 0.5:
            x = x.flip(-1)
        return x


class TrainingLatents(Dataset):
    """Precomputed latents from latent-shard folders, randomly cropped to `crop` x `crop` latent pixels."""

    def __init__(self, sources: Sequence[str | Path], crop: int, flip: bool = False) -> None:
        self.crop, self.flip = crop, flip
        self.readers = []
        for source in sources:
            if not is_shard_folder(source):
                raise ConfigError(f"{source} is not a shard folder; latent training needs `onestep pack --autoencoder`")
            reader = ShardReader(source)
            if reader.kind != "latent":
                raise ConfigError(f"{source} holds {reader.kind} shards; latent training needs latent shards")
            self.readers.append(reader)
        self.meta = self.readers[0].meta if self.readers else {}
        if any(r.meta.get("autoencoder") != self.meta.get("autoencoder") for r in self.readers):
            raise ConfigError("latent shards from different autoencoders cannot be mixed")
        self.items = [(r, i) for r in self.readers for i in range(len(r))]
        if not self.items:
            raise ConfigError("no latents found in the given shard folders")
        smallest = min(min(r.records[i].shape[-2:]) for r, i in self.items)
        if smallest < crop:
            raise ConfigError(f"latent crop {crop} is larger than the smallest stored latent side ({smallest})")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        index, seed = item
        reader, key = self.items[index]
        generator = torch.Generator().manual_seed(seed)
        x = _random_crop(reader.latent(key), self.crop, generator)
        if self.flip and torch.rand((), generator=generator) < 0.5:
            x = x.flip(-1)
        return x


class BatchPlan:
    """An endless, resumable sequence of batches of `(index, seed)` items for one process.

    Each epoch is a fresh permutation drawn from (seed, epoch); a global batch of `batch_size x world`
    items is split between processes, and incomplete global batches are dropped (as the reference does).
    `start` is the number of batches already consumed: iteration resumes exactly there."""

    def __init__(
        self, num_items: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1
    ) -> None:
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.start, self.rank, self.world = start, rank, world
        self.per_epoch = num_items // (batch_size * world)
        if self.per_epoch == 0:
            raise ConfigError(f"{num_items} training items are fewer than one global batch ({batch_size} x {world})")

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        position = self.start
        while True:
            epoch, offset = divmod(position, self.per_epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
            seeds = np.random.SeedSequence([self.seed, epoch]).generate_state(self.num_items, dtype=np.uint64)
            global_batch = self.batch_size * self.world
            for b in range(offset, self.per_epoch):
                first = b * global_batch + self.rank * self.batch_size
                chosen = range(first, first + self.batch_size)
                yield [(int(order[j]), int(seeds[j] >> np.uint64(1))) for j in chosen]
            position = (epoch + 1) * self.per_epoch


def make_loader(dataset: Dataset, plan: BatchPlan, num_workers: int = 0, seed: int = 0) -> DataLoader:
    """A loader over `plan`'s batches. It gets its own generator: a loader otherwise draws its workers' base
    seed from the global RNG, which would shift the training RNG between a fresh and a resumed run."""
    return DataLoader(
        dataset,
        batch_sampler=plan,  # type: ignore[arg-type]
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
