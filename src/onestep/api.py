"""The library API: load a model, turn images into `.osc` bytes and back, describe a file.

    model = load_model()                          # the packaged default model, or load_model("models/mine")
    data = compress(model, image)                 # bytes of a complete .osc file
    image = decompress(model, data)               # the same kind of image you gave (bits: see README, threads)
    describe(data)                                # model, size, bpp and section sizes, without a model

Images: uint8 torch tensors (3 x H x W, 1 x H x W or H x W), numpy uint8 arrays (H x W x 3, H x W x 1 or
H x W) and PIL images. Float input is refused unless its range is stated (`value_range=(0, 1)`, `(-1, 1)` or
`(0, 255)`): a float image in the wrong range would silently become another image. Greyscale input (one
channel, or a PIL "L" image) is coded as grey and comes back exactly grey, in the same form.

Every user-caused failure is a `OneStepError`; `decompress` checks the container and that the file was made
by this very model (name and weights) before it runs a network.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from .bitstream import ContainerHeader, EncodedImage, read_container, write_container
from .bitstream import describe as describe
from .errors import ConfigError, ImageError, ModelError, StreamError
from .files import write_atomic_group
from .images import encode_png, read_image
from .methods.pipeline import OneStepPipeline
from .modeling import CONFIG_NAME, WEIGHTS_NAME, read_json, state_dict_fingerprint, stored_fingerprint

WEIGHTS_FOLDER = Path(__file__).parent / "weights"
DEFAULT_MODEL = "onestep-avif-restore-1.2"  # the folder under weights/ that `load_model()` loads
VALUE_RANGES = ((0, 1), (-1, 1), (0, 255))


def load_model(
    path: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    decode_only: bool = False,
    render_dtype: torch.dtype | None = None,
) -> OneStepPipeline:
    """Load a model folder (config.json + model.safetensors); `None` loads the packaged default model.
    `decode_only`: without the weights only compressing needs (less memory; `compress` then refuses).
    `render_dtype`: `OneStepPipeline.set_render_dtype` (bfloat16: 2-4x faster on AVX512-BF16/AMX CPUs, but
    not within 2 grey levels of float32: OneDC with random weights differs by up to 16 levels,
    benchmarks/onedc-precision-stages.json)."""
    folder = WEIGHTS_FOLDER / DEFAULT_MODEL if path is None else Path(path)
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist")
    return OneStepPipeline.from_pretrained(folder, device=device, decode_only=decode_only, render_dtype=render_dtype)


@functools.lru_cache(maxsize=1)
def packaged_models() -> dict[tuple[str, bytes], Path]:
    """(model name, fingerprint) -> folder, for every model shipped in the package (read from their headers;
    computed once per process: the package's files do not change, and a batch asks for every file)."""
    found = {}
    for folder in sorted(WEIGHTS_FOLDER.iterdir()) if WEIGHTS_FOLDER.is_dir() else []:
        config, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if not (config.is_file() and weights.is_file()):
            continue
        name, fingerprint = read_json(config).get("name"), stored_fingerprint(weights)
        if fingerprint is None:  # written before fingerprints were stored: hash it (packaged models are small)
            fingerprint = state_dict_fingerprint(load_file(str(weights)))
        if isinstance(name, str):
            found[(name, fingerprint)] = folder
    return found


def model_for_stream(data: bytes, device: str = "cpu") -> OneStepPipeline:
    """The packaged model that made a stream, or a `StreamError` naming the model folder it needs."""
    header, _ = read_container(data)
    folder = packaged_models().get((header.model_name, header.fingerprint))
    if folder is None:
        raise StreamError(
            f"file was made by model {header.model_name!r} (weights {header.fingerprint.hex()}), which is not "
            "packaged with onestep: pass its folder with --model DIR"
        )
    return _load_packaged(folder, device)


@functools.lru_cache(maxsize=4)
def _load_packaged(folder: Path, device: str) -> OneStepPipeline:
    """A packaged model, loaded once per process (a batch of files from one model loads it once)."""
    return OneStepPipeline.from_pretrained(folder, device=device)


# --- images in, images out -----------------------------------------------------------------------------------


def _from_float(values: torch.Tensor, value_range: tuple[float, float] | None) -> torch.Tensor:
    if value_range is None:
        raise ImageError(
            f"image is {values.dtype}: say what range its values are in (value_range=(0, 1), (-1, 1) or (0, 255)), "
            "or pass uint8"
        )
    if tuple(value_range) not in VALUE_RANGES:
        raise ConfigError(f"value_range must be one of {VALUE_RANGES}, got {value_range}")
    lo, hi = value_range
    values = values.double()
    if not torch.isfinite(values).all() or values.min() < lo or values.max() > hi:
        low, high = float(values.nan_to_num().min()), float(values.nan_to_num().max())
        raise ImageError(f"image values span [{low:g}, {high:g}] or are not finite: outside value_range {value_range}")
    return ((values - lo) * (255 / (hi - lo))).round().to(torch.uint8)


def as_image(image: Any, value_range: tuple[float, float] | None = None) -> tuple[torch.Tensor, str]:
    """Any accepted image -> (C x H x W uint8 tensor with C in (1, 3), the form it came in)."""
    if isinstance(image, Image.Image):
        picture = image.convert("L" if image.mode in ("L", "1", "I;16", "I", "LA") else "RGB")
        array, kind = np.asarray(picture), "pil"
    elif isinstance(image, np.ndarray):
        array, kind = image, "numpy"
    elif isinstance(image, torch.Tensor):
        array, kind = None, "tensor"
    else:
        raise ImageError(f"cannot take an image of type {type(image).__name__} (torch tensor, numpy array or PIL)")
    if array is not None:  # numpy and PIL are H x W (x C)
        if array.ndim == 3:
            array = array.transpose(2, 0, 1)
        tensor = torch.from_numpy(np.array(array, order="C"))  # a copy: PIL and read-only arrays stay untouched
    else:
        tensor = image.detach().cpu()
    if tensor.dim() == 2:
        tensor = tensor[None]
    if tensor.dim() != 3 or tensor.shape[0] not in (1, 3) or min(tensor.shape[1:]) < 1:
        layout = "C x H x W" if kind == "tensor" else "H x W x C"
        raise ImageError(f"expected an image with 1 or 3 channels ({layout} or H x W), got shape {tuple(image.shape)}")
    if tensor.dtype.is_floating_point:
        tensor = _from_float(tensor, value_range)
    elif tensor.dtype != torch.uint8:
        raise ImageError(f"image is {tensor.dtype}: pass uint8, or floats with value_range")
    return tensor, kind


def as_kind(image: torch.Tensor, kind: str, two_dimensional: bool) -> Any:
    """C x H x W uint8 -> the form `as_image` was given."""
    if kind == "tensor":
        return image[0] if two_dimensional else image
    array = image.permute(1, 2, 0).numpy()
    if kind == "pil":
        return Image.fromarray(array[:, :, 0], "L") if image.shape[0] == 1 else Image.fromarray(array, "RGB")
    return array[:, :, 0] if two_dimensional else array


def _colour(image: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """What the model codes: three channels; and whether the image was grey."""
    grey = image.shape[0] == 1
    return (image.expand(3, -1, -1) if grey else image), grey


def _wrap(model: OneStepPipeline, encoded: EncodedImage, grey: bool) -> bytes:
    encoded.grey = grey
    return write_container(encoded, model.name, model.fingerprint())


def compress(
    model: OneStepPipeline,
    image: Any,
    mode: str = "normal",
    quality: int | None = None,
    value_range: tuple[float, float] | None = None,
) -> bytes:
    """An image -> the bytes of a complete `.osc` file. `quality` picks the rate for models with rate control."""
    model.check_mode(mode, ConfigError)
    pixels, grey = _colour(as_image(image, value_range)[0])
    return _wrap(model, model.compress(pixels, mode=mode, quality=quality), grey)


def _as_output(image: torch.Tensor, grey: bool) -> torch.Tensor:
    """The decoder's 3 x H x W -> 1 x H x W (the channels' mean, rounded) for a grey stream."""
    if not grey:
        return image
    return ((image.to(torch.int32).sum(0, keepdim=True) + 1) // 3).to(torch.uint8)


def compress_and_reconstruct(
    model: OneStepPipeline,
    image: Any,
    mode: str = "normal",
    quality: int | None = None,
    value_range: tuple[float, float] | None = None,
) -> tuple[bytes, Any]:
    """`compress`, plus the image `decompress` will return (in the same form as `image`), computed on the
    encoder's side without decoding the stream again (the same bits: the codecs' round-trip tests check it)."""
    model.check_mode(mode, ConfigError)
    pixels, kind = as_image(image, value_range)
    two_dimensional = getattr(image, "ndim", 3) == 2
    pixels, grey = _colour(pixels)
    encoded, reconstruction = model.compress_and_reconstruct(pixels, mode=mode, quality=quality)
    return _wrap(model, encoded, grey), as_kind(_as_output(reconstruction, grey), kind, two_dimensional)


def compress_to_size(
    model: OneStepPipeline, image: Any, max_bytes: int, mode: str = "normal", value_range: Any = None
) -> tuple[bytes, int]:
    """The file at the highest quality that is not larger than `max_bytes`, and that quality (rate grows with
    quality: searched by bisection); a `ConfigError` if even the lowest quality is larger."""
    if not model.qualities:
        raise ConfigError(f"model {model.name!r} has no rate control, so it cannot aim at a size")
    qualities = sorted(model.qualities)
    best, lo, hi = None, 0, len(qualities) - 1
    while lo <= hi:
        middle = (lo + hi) // 2
        data = compress(model, image, mode=mode, quality=qualities[middle], value_range=value_range)
        if len(data) <= max_bytes:
            best, lo = (data, qualities[middle]), middle + 1
        else:
            hi = middle - 1
    if best is None:
        raise ConfigError(f"even the lowest quality ({qualities[0]}) makes a file larger than {max_bytes} bytes")
    return best


def check_model(header: ContainerHeader, model: OneStepPipeline) -> None:
    """Refuse a stream made by another model (or other weights under the same name)."""
    ours = model.fingerprint()
    if header.model_name != model.name or header.fingerprint != ours:
        raise StreamError(
            f"file was made by model {header.model_name!r} (weights {header.fingerprint.hex()}), "
            f"not by the loaded model {model.name!r} (weights {ours.hex()})"
        )


def decompress(
    model: OneStepPipeline | None, data: bytes, decode_tile: int | None = None, preview: bool = False
) -> torch.Tensor:
    """The bytes of an `.osc` file -> the reconstruction: 3 x H x W uint8, or 1 x H x W for a grey image.
    `model=None` finds the packaged model that made the file. `preview`: the model's quick decode (SODEC)."""
    header, encoded = read_container(data)
    if model is None:
        model = model_for_stream(data)
    check_model(header, model)
    return _as_output(model.decompress(encoded, decode_tile=decode_tile, preview=preview), header.grey)


# --- files ---------------------------------------------------------------------------------------------------


def _read_stream(path: str | os.PathLike[str]) -> bytes:
    path = Path(path)
    if path.is_dir():
        raise StreamError("is a folder, not a file")
    if not path.is_file():
        raise StreamError("no such file")
    return path.read_bytes()


def compress_file(
    model: OneStepPipeline,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    mode: str = "normal",
    reconstruction: str | os.PathLike[str] | None = None,
    quality: int | None = None,
    max_bytes: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Compress an image file into an `.osc` file; with `reconstruction`, also write what the receiver will
    see as a PNG. Both are written together or not at all; existing files are kept unless `overwrite`.
    `max_bytes` picks the highest quality whose file fits. Returns `describe`."""
    image = read_image(source, max_pixels=model.max_pixels, keep_grey=True)
    outputs: list[tuple[str | os.PathLike[str], bytes]] = []
    if max_bytes is not None:
        data, quality = compress_to_size(model, image, max_bytes, mode=mode)
    if reconstruction is not None:  # the chosen quality again, now with the receiver's picture
        data, picture = compress_and_reconstruct(model, image, mode=mode, quality=quality)
        outputs.append((reconstruction, encode_png(picture)))
    elif max_bytes is None:
        data = compress(model, image, mode=mode, quality=quality)
    outputs.insert(0, (target, data))
    write_atomic_group(outputs, overwrite=overwrite)
    return describe(data)


def decompress_file(
    model: OneStepPipeline | None,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    overwrite: bool = False,
    decode_tile: int | None = None,
    preview: bool = False,
) -> dict[str, Any]:
    """Decompress an `.osc` file into a PNG (written atomically; an existing file is kept unless `overwrite`);
    returns `describe` of the source. `model=None`: the packaged model the file names."""
    try:
        data = _read_stream(source)
        image = decompress(model, data, decode_tile=decode_tile, preview=preview)
    except StreamError as e:
        raise StreamError(f"{source}: {e}") from None
    write_atomic_group([(target, encode_png(image))], overwrite=overwrite)
    return describe(data)


def describe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """`describe` of an `.osc` file; errors name the file."""
    try:
        return describe(_read_stream(path))
    except StreamError as e:
        raise StreamError(f"{path}: {e}") from None
