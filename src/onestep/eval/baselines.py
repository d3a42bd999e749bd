"""Baseline image codecs, each swept over its quality setting: JPEG, WebP and AVIF through Pillow,
JPEG XL through imagecodecs. Files are complete, decodable images; bpp counts all their bytes.

Low-rate baselines that need no learning: AVIF and WebP of the image downscaled 2x or 4x (Lanczos),
upscaled back to full size with Lanczos after decoding (`avif-down2`, `webp-down4`, ...). Their file is
the AVIF/WebP file plus 4 bytes holding the original width and height (counted in bpp).

The default sweeps were chosen to cover 0.01-1 bpp on Kodak as far as each codec reaches (none goes
down to 0.01 bpp: even at their lowest quality they spend more; the results record where each stops).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

import imagecodecs
import numpy as np
import PIL
import torch
from PIL import Image, features

from ..errors import ConfigError


def _to_array(image: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(image.permute(1, 2, 0).numpy())


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array[:, :, :3].transpose(2, 0, 1)))


def _pillow_encoder(fmt: str, **options: object) -> Callable[[np.ndarray, float, int], bytes]:
    def encode(array: np.ndarray, quality: float, threads: int) -> bytes:
        extra = {"max_threads": threads} if fmt == "AVIF" else {}
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=fmt, quality=int(quality), **options, **extra)
        return buffer.getvalue()

    return encode


def _pillow_decode(data: bytes, threads: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _jxl_encode(array: np.ndarray, distance: float, threads: int) -> bytes:
    return bytes(imagecodecs.jpegxl_encode(array, distance=float(distance), effort=7, numthreads=threads))


def _jxl_decode(data: bytes, threads: int) -> np.ndarray:
    return imagecodecs.jpegxl_decode(data, numthreads=threads)


@dataclass
class BaselineCodec:
    """One codec and its sweep; `encode`/`decode` take and give 3 x H x W uint8 tensors."""

    name: str  # short id, used in file names
    label: str  # for plots and tables
    description: str  # library, version and fixed options
    setting_name: str  # what is swept
    settings: tuple[float, ...]
    encoder: Callable[[np.ndarray, float, int], bytes]
    decoder: Callable[[bytes, int], np.ndarray]
    threads: int = 1

    def setting_label(self, setting: float) -> str:
        return f"{self.setting_name}={setting:g}"

    def cache_key(self, setting: float) -> str:
        """Changes with the library version and fixed options, so a new libavif does not reuse old files."""
        return f"{self.description}|{self.setting_name}={setting:g}"

    def encode(self, setting: float, image: torch.Tensor) -> bytes:
        return self.encoder(_to_array(image), setting, self.threads)

    def decode(self, setting: float, data: bytes) -> torch.Tensor:
        return _to_tensor(self.decoder(data, self.threads))


def _versions() -> dict[str, str]:
    pillow = f"Pillow {PIL.__version__}"
    return {
        "jpeg": f"{pillow}, libjpeg-turbo {features.version_feature('libjpeg_turbo')}",
        "webp": f"{pillow}, libwebp {features.version('webp')}",
        "avif": f"{pillow}, libavif {features.version('avif')}",
        "jxl": f"imagecodecs {imagecodecs.__version__}, {imagecodecs.jpegxl_version()}",
    }


def baseline(name: str, settings: tuple[float, ...] | None = None, threads: int = 1) -> BaselineCodec:
    """A baseline codec by name: jpeg, webp, avif or jxl (default sweep unless `settings` is given)."""
    if name == "avif" and not features.check("avif"):
        raise ConfigError("this Pillow has no AVIF support (Pillow >= 11.2 built with libavif is needed)")
    v = _versions()
    # name -> (label, description, swept setting, default sweep, encoder, decoder)
    specs = {
        "jpeg": ("JPEG", f"{v['jpeg']}, 4:2:0, optimized Huffman", "quality", (1, 3, 5, 10, 15, 25, 40, 55, 75, 95),
                 _pillow_encoder("JPEG", subsampling=2, optimize=True), _pillow_decode),
        "webp": ("WebP", f"{v['webp']}, lossy, method 6", "quality", (0, 2, 5, 10, 20, 30, 45, 60, 75),
                 _pillow_encoder("WEBP", method=6), _pillow_decode),
        "avif": ("AVIF", f"{v['avif']}, 4:2:0, speed 6", "quality", (0, 5, 12, 20, 28, 36, 45, 54, 62),
                 _pillow_encoder("AVIF", subsampling="4:2:0", speed=6), _pillow_decode),
        "jxl": ("JPEG XL", f"{v['jxl']}, effort 7", "distance", (25, 18, 12, 8, 5.5, 4, 3, 2.2, 1.6),
                _jxl_encode, _jxl_decode),
    }  # fmt: skip
    if name not in specs:
        raise ConfigError(f"unknown baseline codec {name!r} (known: {', '.join(specs)})")
    label, description, setting_name, sweep, encoder, decoder = specs[name]
    return BaselineCodec(name, label, description, setting_name, tuple(settings or sweep), encoder, decoder, threads)


BASELINES = ("jpeg", "webp", "avif", "jxl")
DOWNSCALED_BASELINES = ("avif-down2", "avif-down4", "webp-down2", "webp-down4")
# default sweeps of the downscaled baselines: aimed at about 0.01-0.2 bpp on Kodak
DOWNSCALED_SWEEPS = {"avif": (0, 10, 20, 30, 40, 50), "webp": (0, 10, 25, 40, 60, 80)}
SIZE_HEADER = struct.Struct(">HH")  # original width, height


def _resize(array: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(array).resize((width, height), Image.Resampling.LANCZOS))


def _downscaled(
    encoder: Callable[[np.ndarray, float, int], bytes], decoder: Callable[[bytes, int], np.ndarray], factor: int
) -> tuple[Callable[[np.ndarray, float, int], bytes], Callable[[bytes, int], np.ndarray]]:
    def encode(array: np.ndarray, quality: float, threads: int) -> bytes:
        height, width = array.shape[:2]
        if max(width, height) > 0xFFFF:
            raise ConfigError(f"downscaled baselines take images up to 65535 px a side, not {width} x {height}")
        small = _resize(array, max(1, round(width / factor)), max(1, round(height / factor)))
        return SIZE_HEADER.pack(width, height) + encoder(small, quality, threads)

    def decode(data: bytes, threads: int) -> np.ndarray:
        width, height = SIZE_HEADER.unpack_from(data)
        return _resize(decoder(data[SIZE_HEADER.size :], threads)[:, :, :3], width, height)

    return encode, decode


def any_baseline(name: str, settings: tuple[float, ...] | None = None, threads: int = 1) -> BaselineCodec:
    """A baseline by name: BASELINES, or `<avif|webp>-down<2|4>` (downscaled, Lanczos both ways)."""
    base_name, _, down = name.partition("-down")
    if not down:
        return baseline(name, settings, threads)
    if base_name not in DOWNSCALED_SWEEPS or down not in ("2", "4"):
        known = ", ".join(BASELINES + DOWNSCALED_BASELINES)
        raise ConfigError(f"unknown baseline codec {name!r} (known: {known})")
    base = baseline(base_name, settings or DOWNSCALED_SWEEPS[base_name], threads)
    factor = int(down)
    encoder, decoder = _downscaled(base.encoder, base.decoder, factor)
    description = f"{base.description}; image downscaled {factor}x before coding and upscaled back, Lanczos"
    label = f"{base.label} ↓{factor}x"
    return BaselineCodec(name, label, description, base.setting_name, base.settings, encoder, decoder, threads)
