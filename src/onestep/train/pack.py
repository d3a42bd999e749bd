"""`onestep pack`: image folders -> compact training shards.

    onestep pack ../shared/data/train -o packed/train256            # WebP images, short side 256
    onestep pack ../shared/data/train -o packed/taef2 --autoencoder taef2   # float16 latents

Image shards make a training set small enough to carry to a GPU machine; latent shards hold the
latents of a frozen autoencoder so that cheap latent-space training never runs its encoder.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from ..autoencoders.base import Autoencoder
from ..errors import ConfigError, ModelError
from ..modeling import ModelMixin
from .data import list_images, load_rgb, resize_short_side, to_tensor
from .shards import ShardWriter, latent_bytes

FORMATS = {"webp": "WEBP", "jpeg": "JPEG"}


def encode_image(image: Image.Image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if fmt == "webp":
        image.save(buffer, format="WEBP", quality=quality, method=6)
    else:
        image.save(buffer, format="JPEG", quality=quality, subsampling=0, optimize=True)
    return buffer.getvalue()


def _sources(folders: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(path, record name) of every image; the name keeps the folder's own name and the relative path."""
    found = [(p, f"{Path(f).name}/{p.relative_to(f).as_posix()}") for f in folders for p in list_images(f)]
    if not found:
        raise ConfigError(f"no images found in {', '.join(map(str, folders))}")
    return found


def pack_images(
    folders: Sequence[str | Path],
    out: str | Path,
    size: int = 256,
    fmt: str = "webp",
    quality: int = 90,
    shard_mb: int = 16,
    progress: bool = False,
) -> ShardWriter:
    """Resize every image's short side to `size` (None keeps it) and store it re-encoded."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown image format {fmt!r} (choose {', '.join(FORMATS)})")
    sources = _sources(folders)  # before the output folder is made: a bad input leaves nothing behind
    writer = ShardWriter(out, "image", shard_mb << 20, size=size, image_format=fmt, quality=quality)
    for path, name in tqdm(sources, desc="pack", disable=not progress):
        image = load_rgb(path)
        if size:
            image = resize_short_side(image, size)
        writer.add(encode_image(image, fmt, quality), (image.height, image.width), name)
    writer.close()
    return writer


def load_autoencoder(spec: str) -> Autoencoder:
    """`taef2` (the released weights: `TAEF2.from_folder`), `taef2:FOLDER`, an autoencoder folder or a
    pipeline folder (its autoencoder is used)."""
    if spec == "taef2" or spec.startswith("taef2:"):
        from ..autoencoders.taef2 import TAEF2

        return TAEF2.from_folder(spec[6:] or None).eval()

    model = ModelMixin.from_pretrained(spec)
    model = getattr(model, "autoencoder", model)
    if not isinstance(model, Autoencoder):
        raise ModelError(f"{spec} holds a {type(model).__name__}, which is neither an autoencoder nor a pipeline")
    return model.eval()


@torch.no_grad()
def pack_latents(
    folders: Sequence[str | Path],
    out: str | Path,
    autoencoder: Autoencoder,
    size: int = 256,
    shard_mb: int = 64,
    progress: bool = False,
    device: str = "cpu",
) -> ShardWriter:
    """Encode each image (short side resized to `size`, sides cropped to the autoencoder's downsampling)."""
    ds = autoencoder.downsampling
    meta = {
        "size": size,
        "autoencoder": autoencoder.to_config(),
        "fingerprint": autoencoder.encoder_fingerprint(),
        "latent_channels": autoencoder.latent_channels,
        "downsampling": ds,
    }
    sources = _sources(folders)
    writer = ShardWriter(out, "latent", shard_mb << 20, **meta)
    autoencoder.to(device)
    for path, name in tqdm(sources, desc="encode", disable=not progress):
        image = load_rgb(path)
        if size:
            image = resize_short_side(image, size)
        x = to_tensor(image)
        h, w = (x.shape[-2] // ds) * ds, (x.shape[-1] // ds) * ds
        if h == 0 or w == 0:
            raise ConfigError(f"{path} is smaller than the autoencoder's downsampling ({ds})")
        top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
        latent = autoencoder.encode(x[None, :, top : top + h, left : left + w].to(device))[0]
        writer.add(latent_bytes(latent), tuple(latent.shape), name)
    writer.close()
    return writer


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", help="image folders (searched recursively)")
    parser.add_argument("-o", "--out", required=True, help="output folder (must not hold shards yet)")
    parser.add_argument("--size", type=int, default=256, help="short side after resizing; 0 keeps the size")
    parser.add_argument("--format", choices=sorted(FORMATS), default="webp", help="image encoding of image shards")
    parser.add_argument("--quality", type=int, default=90, help="WebP/JPEG quality")
    parser.add_argument("--shard-mb", type=int, default=16, help="approximate size of one shard file")
    parser.add_argument("--autoencoder", help="store latents of this frozen autoencoder: `taef2` or a model folder")
    parser.add_argument("--device", default="cpu", help="where the autoencoder runs (e.g. cuda)")


def run(name: str, args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.autoencoder:
        autoencoder = load_autoencoder(args.autoencoder)
        writer = pack_latents(args.folders, args.out, autoencoder, args.size, args.shard_mb, True, args.device)
    else:
        writer = pack_images(args.folders, args.out, args.size, args.format, args.quality, args.shard_mb, True)
    total = writer.total_bytes()
    print(
        f"packed {len(writer.records)} {writer.kind}s into {len(writer.shards)} shard(s) in {args.out}: "
        f"{total / 1e6:.1f} MB, {time.perf_counter() - start:.0f} s"
    )
    return 0
