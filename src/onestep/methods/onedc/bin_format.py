"""The reference's `.bin` files (digest §4), read and written byte for byte:

    offset  bytes              field (integers big-endian)
    0       4                  original height H
    4       4                  original width W
    8       4                  n = length of the y stream
    12      4                  c = caption length (0 in every file the reference writes; read and ignored)
    16      n                  y stream: flag byte 0x01, final rANS state (little-endian), rANS bytes
    16+n    ceil(Hz*Wz*14/8)   z: FSQ indices as 14-bit fields, big-endian, zero bits at the front
    ...     c                  caption

Hz x Wz is the z grid of the image padded to a multiple of 64. There is no magic number, model id or
checksum, so a file is only checked for consistency (sizes, flag, padding bits, index range).

`read_bin` / `write_bin` convert between this layout and an `EncodedImage` of OneDC's "reference-rans"
mode, whose sections are exactly the file's y and z fields (the y stream is coded with the reference's
own coder, `reference_coder.py`); `compress_bin_file` / `decompress_bin_file` are the CLI's file steps.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from ...bitstream import MAX_PIXELS, EncodedImage, read_container
from ...entropy.packing import packed_size
from ...errors import ConfigError, StreamError
from ..pipeline import OneStepPipeline, padded_size
from .codec import REFERENCE_MODE
from .reference_coder import STREAM_FLAG

HEADER = struct.Struct(">IIII")
PAD_MULTIPLE = 64  # pixels per z position
INDEX_BITS = 14  # FSQ levels [4] * 7
BIN_SUFFIX = ".bin"
# the registry's stream-format interface (`Method.stream_formats`); the file steps are defined below
SUFFIX = BIN_SUFFIX
DESCRIPTION = "the OneDC reference's .bin files (normal mode; decoding needs --model)"


def z_field_size(height: int, width: int) -> int:
    hp, wp = padded_size(height, width, PAD_MULTIPLE)
    return packed_size((hp // PAD_MULTIPLE) * (wp // PAD_MULTIPLE), INDEX_BITS)


def read_bin(data: bytes) -> EncodedImage:
    """Split a reference `.bin` file; `StreamError` if it is not one."""
    data = bytes(data)
    if len(data) < HEADER.size:
        raise StreamError(f"file is truncated: {len(data)} bytes, a OneDC .bin header has {HEADER.size}")
    height, width, y_size, caption_size = HEADER.unpack_from(data)
    if not (1 <= height and 1 <= width and height * width <= MAX_PIXELS):
        raise StreamError(f"file claims an absurd image size of {width}x{height} (not a OneDC .bin file?)")
    z_size = z_field_size(height, width)
    total = HEADER.size + y_size + z_size + caption_size
    if len(data) < total:
        raise StreamError(f"file is truncated: {len(data)} bytes, its header announces {total}")
    if len(data) > total:
        raise StreamError(f"file has {len(data) - total} unexpected bytes after its end ({total} bytes)")
    if y_size < 5 or data[HEADER.size] != STREAM_FLAG:
        raise StreamError("file's y stream is not a one-part rANS stream (flag 0x01 and a 4-byte state)")
    y = data[HEADER.size : HEADER.size + y_size]
    z = data[HEADER.size + y_size : HEADER.size + y_size + z_size]
    return EncodedImage(sections={"z": z, "y": y}, height=height, width=width, mode=REFERENCE_MODE)


def write_bin(encoded: EncodedImage) -> bytes:
    """The `.bin` file of an `EncodedImage` made in the "reference-rans" mode (`ConfigError` otherwise: other
    modes code y differently or not at all, which the reference cannot read)."""
    if encoded.mode != REFERENCE_MODE or set(encoded.sections) != {"y", "z"}:
        raise ConfigError(
            f"a OneDC .bin file holds a stream of the {REFERENCE_MODE!r} mode (sections y and z), "
            f"not of mode {encoded.mode!r} with sections {sorted(encoded.sections)}"
        )
    y, z = encoded.sections["y"], encoded.sections["z"]
    if len(z) != z_field_size(encoded.height, encoded.width):
        raise ConfigError(f"z has {len(z)} bytes; a {encoded.width}x{encoded.height} image has 14-bit FSQ indices")
    if not 1 <= encoded.height < 1 << 32 or not 1 <= encoded.width < 1 << 32 or len(y) >= 1 << 32:
        raise ConfigError(f"cannot store an image size of {encoded.width}x{encoded.height} in a .bin file")
    return HEADER.pack(encoded.height, encoded.width, len(y), 0) + y + z


def check_model(model: OneStepPipeline) -> None:
    if REFERENCE_MODE not in model.modes:
        raise ConfigError(f"model {model.name!r} cannot read or write OneDC .bin files (it is not a OneDC model)")


def describe_bin(data: bytes) -> dict[str, Any]:
    encoded = read_bin(data)
    return {
        "width": encoded.width,
        "height": encoded.height,
        "bytes": len(data),
        "bpp": 8 * len(data) / (encoded.width * encoded.height),
    }


def compress_bin_file(
    model: OneStepPipeline,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    reconstruction: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """`api.compress_file` for a `.bin` output (a grey image is coded as RGB: the format has no grey flag)."""
    from ... import api
    from ...files import write_atomic_group
    from ...images import encode_png, read_image

    check_model(model)
    image = read_image(source, max_pixels=model.max_pixels)  # RGB: what the reference's decoder will show
    outputs: list[tuple[str | os.PathLike[str], bytes]] = []
    if reconstruction is not None:
        container, picture = api.compress_and_reconstruct(model, image, mode=REFERENCE_MODE)
        outputs.append((reconstruction, encode_png(picture)))
    else:
        container = api.compress(model, image, mode=REFERENCE_MODE)
    data = write_bin(read_container(container)[1])
    outputs.insert(0, (target, data))
    write_atomic_group(outputs, overwrite=overwrite)
    return describe_bin(data)


def decompress_bin_file(
    model: OneStepPipeline,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    overwrite: bool = False,
    decode_tile: int | None = None,
) -> dict[str, Any]:
    """`api.decompress_file` for a `.bin` input (the file names no model: `model` is required)."""
    from ...files import write_atomic_group
    from ...images import encode_png

    check_model(model)
    path = Path(source)
    try:
        if not path.is_file():
            raise StreamError("is a folder, not a file" if path.is_dir() else "no such file")
        data = path.read_bytes()
        image = model.decompress(read_bin(data), decode_tile=decode_tile)
    except StreamError as e:
        raise StreamError(f"{source}: {e}") from None
    write_atomic_group([(target, encode_png(image))], overwrite=overwrite)
    return describe_bin(data)


compress_file = compress_bin_file
decompress_file = decompress_bin_file
