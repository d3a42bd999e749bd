"""The library API: load a model, turn images into `.osc` bytes and back, describe a file.

    model = load_model("models/onedc")            # or load_model(None) for the packaged default model
    data = compress(model, read_image("a.png"))   # bytes of a complete .osc file
    image = decompress(model, data)               # 3 x H x W uint8, the same bits with any thread count
    describe(data)                                # model, size, bpp and section sizes, without a model

Every user-caused failure is a `OneStepError`; `decompress` checks the container and that the file was made
by this very model (name and weights) before it runs a network.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

import torch

from .bitstream import ContainerHeader, read_container, write_container
from .errors import ConfigError, ModelError, StreamError
from .images import read_image, write_file_atomic, write_png
from .methods.pipeline import OneStepPipeline
from .modeling import CONFIG_NAME

DEFAULT_MODEL_FOLDER = Path(__file__).parent / "weights" / "default"
_fingerprints: weakref.WeakKeyDictionary[OneStepPipeline, tuple[tuple[int, ...], bytes]] = weakref.WeakKeyDictionary()


def load_model(path: str | os.PathLike[str] | None = None, device: str = "cpu") -> OneStepPipeline:
    """Load a model folder (config.json + model.safetensors); `None` loads the packaged default model."""
    if path is None:
        folder = DEFAULT_MODEL_FOLDER
        if not (folder / CONFIG_NAME).is_file():
            raise ModelError("no default model is installed yet; pass --model DIR")
    else:
        folder = Path(path)
        if not folder.is_dir():
            raise ModelError(f"model folder {folder} does not exist")
    return OneStepPipeline.from_pretrained(folder, device=device)


def model_fingerprint(model: OneStepPipeline) -> bytes:
    """`model.fingerprint()`, hashed again only when a weight changed (hashing a large model takes seconds)."""
    # Tensor version counters move with every in-place update (optimizer steps, load_state_dict).
    state = model.state_dict(keep_vars=True).values()
    key = tuple(v for t in state for v in (t.data_ptr(), t._version))
    cached = _fingerprints.get(model)
    if cached is None or cached[0] != key:
        cached = (key, model.fingerprint())
        _fingerprints[model] = cached
    return cached[1]


def _check_mode(model: OneStepPipeline, mode: str) -> None:
    if mode not in model.modes:
        raise ConfigError(f"model {model.name!r} has no mode {mode!r} (it has: {', '.join(model.modes)})")


def compress(model: OneStepPipeline, image: torch.Tensor, mode: str = "normal") -> bytes:
    """A 3 x H x W uint8 image -> the bytes of a complete `.osc` file."""
    _check_mode(model, mode)
    return write_container(model.compress(image, mode=mode), model.name, model_fingerprint(model))


def compress_and_reconstruct(
    model: OneStepPipeline, image: torch.Tensor, mode: str = "normal"
) -> tuple[bytes, torch.Tensor]:
    """`compress`, plus the image `decompress` will return, computed on the encoder's side without decoding
    the stream again (the same bits: the codecs' round-trip tests check it)."""
    _check_mode(model, mode)
    encoded, image = model.compress_and_reconstruct(image, mode=mode)
    return write_container(encoded, model.name, model_fingerprint(model)), image


def check_model(header: ContainerHeader, model: OneStepPipeline) -> None:
    """Refuse a stream made by another model (or other weights under the same name)."""
    ours = model_fingerprint(model)
    if header.model_name != model.name or header.fingerprint != ours:
        raise StreamError(
            f"file was made by model {header.model_name!r} (weights {header.fingerprint.hex()}), "
            f"not by the loaded model {model.name!r} (weights {ours.hex()})"
        )


def decompress(model: OneStepPipeline, data: bytes) -> torch.Tensor:
    """The bytes of an `.osc` file -> the 3 x H x W uint8 reconstruction."""
    header, encoded = read_container(data)
    check_model(header, model)
    return model.decompress(encoded)


def describe(data: bytes) -> dict[str, Any]:
    """What a file holds, read from its header alone (no model needed). bpp counts every byte of the file."""
    header, _ = read_container(data)
    return {
        "model": header.model_name,
        "fingerprint": header.fingerprint.hex(),
        "format_version": header.version,
        "mode": header.mode,
        "width": header.width,
        "height": header.height,
        "bytes": len(data),
        "bpp": 8 * len(data) / (header.height * header.width),
        "sections": dict(header.section_sizes),
        "overhead_bytes": header.overhead_bytes,
    }


def _read_stream(path: str | os.PathLike[str]) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise StreamError("no such file")
    return path.read_bytes()


def compress_file(
    model: OneStepPipeline,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    mode: str = "normal",
    reconstruction: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Compress an image file into an `.osc` file; with `reconstruction`, also write what the receiver will
    see as a PNG. Files are written atomically. Returns `describe`."""
    image = read_image(source, max_pixels=model.max_pixels)
    if reconstruction is None:
        data, image = compress(model, image, mode=mode), None
    else:
        data, image = compress_and_reconstruct(model, image, mode=mode)
    write_file_atomic(target, data)
    if image is not None:
        write_png(reconstruction, image)
    return describe(data)


def decompress_file(
    model: OneStepPipeline, source: str | os.PathLike[str], target: str | os.PathLike[str]
) -> dict[str, Any]:
    """Decompress an `.osc` file into a PNG (written atomically); returns `describe` of the source."""
    try:
        data = _read_stream(source)
        image = decompress(model, data)
    except StreamError as e:
        raise StreamError(f"{source}: {e}") from None
    write_png(target, image)
    return describe(data)


def describe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """`describe` of an `.osc` file; errors name the file."""
    try:
        return describe(_read_stream(path))
    except StreamError as e:
        raise StreamError(f"{path}: {e}") from None
