"""Reading input images into 3 x H x W uint8 tensors (1 x H x W for greyscale on request), writing PNGs.

What `read_image` accepts and how it maps it to 8-bit RGB:
- RGB, greyscale (copied to the three channels), palette, CMYK/YCbCr (Pillow's conversion);
- 16-bit PNG: decoded at full depth and scaled to 8 bits with rounding (v * 255 / 65535), where Pillow
  alone would drop the low byte;
- EXIF orientation is applied (phone JPEGs are stored sideways);
- alpha is dropped, i.e. the colour values are kept as they are: silently if the image is fully opaque,
  with an `AlphaDroppedWarning` otherwise (the codecs code RGB only);
- multi-frame files (GIF, APNG, ...) give their first frame.
Refused with a one-line `ImageError`: missing, unreadable, truncated or non-image files, formats other
than `FORMATS`, floating-point images, and images with more than `max_pixels` pixels (checked from the
header, before decoding, so a small file that claims a huge size costs nothing).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import imagecodecs
import numpy as np
import torch
from PIL import Image

from .errors import ImageError
from .files import write_atomic

DEFAULT_MAX_PIXELS = 1 << 27  # 134 Mpixel; the API passes the model's own limit
# The suffixes of the formats below: what a folder given as input contributes, everywhere (compress, pack, eval).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pnm")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_EXIF_ORIENTATION = 0x0112
# Formats Pillow may open. Others (EPS runs Ghostscript, for one) are refused as "not an image".
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "PPM")


class AlphaDroppedWarning(UserWarning):
    """An input image had transparent pixels; its alpha channel was ignored."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an H x W x C array, as a viewer shows the image."""
    if orientation in (5, 6, 7, 8):  # these four swap the axes
        pixels = pixels.transpose(1, 0, 2)
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation in (2, 3):
        pixels = pixels[:, ::-1]
    if orientation in (3, 4):
        pixels = pixels[::-1]
    return pixels


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _is_sixteen_bit_png(path: Path, image: Image.Image) -> bool:
    if image.format != "PNG":
        return False
    with open(path, "rb") as f:
        head = f.read(25)
    return len(head) == 25 and head[:8] == _PNG_SIGNATURE and head[24] == 16  # IHDR bit depth


def _pixels(path: Path, image: Image.Image) -> np.ndarray:
    """Decode to an H x W x C array, C in (1, 2, 3, 4) where 2 and 4 carry alpha last."""
    if _is_sixteen_bit_png(path, image):
        pixels = _sixteen_to_eight(imagecodecs.png_decode(path.read_bytes()))
    elif image.mode in _SIXTEEN_BIT_MODES:
        pixels = _sixteen_to_eight(np.asarray(image))
    elif image.mode == "F":
        raise ImageError(f"{path}: floating-point images are not supported")
    elif "A" in image.getbands() or image.mode in ("La", "RGBa", "PA") or "transparency" in image.info:
        pixels = np.asarray(image.convert("RGBA"))
    elif image.mode in ("L", "1"):
        pixels = np.asarray(image.convert("L"))
    else:
        pixels = np.asarray(image.convert("RGB"))
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) as a viewer shows the image (EXIF rotation applied), from the header alone."""
    try:
        with Image.open(path, formats=FORMATS) as image:
            width, height = image.size
            if image.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                width, height = height, width
            return width, height
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file in a supported format ({', '.join(FORMATS)})") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read image: {_one_line(e)}") from None


def read_image(
    path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS, keep_grey: bool = False
) -> torch.Tensor:
    """Read an image file as a 3 x H x W uint8 tensor (see the module docstring for the rules); with
    `keep_grey`, a greyscale file gives 1 x H x W."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            image = Image.open(path, formats=FORMATS)
        with image:
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageError(f"{path}: image has zero size ({width}x{height})")
            if width * height > max_pixels:
                raise ImageError(f"{path}: image is {width}x{height}, more than the limit of {max_pixels} pixels")
            image.load()
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            pixels = _pixels(path, image)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: image is too large ({_one_line(e)})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file in a supported format ({', '.join(FORMATS)})") from None
    except Exception as e:  # Pillow and imagecodecs raise many types for damaged data
        raise ImageError(f"{path}: cannot read image: {_one_line(e)}") from None

    if pixels.shape[2] in (2, 4):
        alpha = pixels[:, :, -1]
        if alpha.min() < 255:
            warnings.warn(f"{path}: image has transparent pixels; alpha is ignored", AlphaDroppedWarning, stacklevel=2)
        pixels = pixels[:, :, :-1]
    if pixels.shape[2] == 1 and not keep_grey:
        pixels = np.repeat(pixels, 3, axis=2)
    pixels = _orient(pixels, orientation if orientation in range(1, 9) else 1)
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())  # a copy: Pillow's arrays are read-only


def encode_png(image: torch.Tensor) -> bytes:
    """3 x H x W (RGB) or 1 x H x W (greyscale) uint8 tensor -> PNG bytes."""
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a 3 x H x W or 1 x H x W uint8 tensor, got {image.dtype} {tuple(image.shape)}")
    buffer = io.BytesIO()
    pixels = image.permute(1, 2, 0).contiguous().numpy()
    picture = Image.fromarray(pixels[:, :, 0], mode="L") if image.shape[0] == 1 else Image.fromarray(pixels, "RGB")
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: str | os.PathLike[str], image: torch.Tensor, overwrite: bool = True) -> None:
    """Write a 3 x H x W or 1 x H x W uint8 tensor as a PNG, atomically."""
    write_atomic(path, encode_png(image), overwrite=overwrite)
