"""The `.osc` container: what a compressed file looks like on disk.

The latent codecs produce named byte strings (sections); this module wraps them with everything a
decoder needs to refuse a file before touching a network: a magic number, the format version, the
mode, which model made the stream, the original image size and a CRC-32. All integers are big-endian.

    offset  bytes  field
    0       4      magic b"\\x89OSC" (the high first byte catches text-mode mangling, as in PNG)
    4       1      format version (1)
    5       1      flags: bits 0-3 the mode (0 normal, 1 z-only), bits 4-7 reserved (0)
    6       1      n = length of the model name
    7       n      model name, utf-8
    7+n     8      fingerprint of the model's weights (`ModelMixin.fingerprint()`)
    15+n    4      original height (uint32)
    19+n    4      original width (uint32)
    23+n    1      k = number of sections
    ...            k times: 1 byte name length, the name (utf-8), uint32 payload length
    ...            the k payloads, in table order
    end-4   4      CRC-32 of every byte before it

Overhead: 28 bytes + the model name + 5 bytes and the name per section (45 bytes for model "onedc"
with sections "y" and "z").
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .errors import ConfigError, StreamError
from .methods.pipeline import EncodedImage

MAGIC = b"\x89OSC"
FORMAT_VERSION = 1
MODES = ("normal", "z-only")  # the flags' mode code is the index in this tuple
FINGERPRINT_BYTES = 8
MAX_PIXELS = 1 << 32  # more than any model can decode: a larger claim is corruption
_MODE_BITS = 0x0F
_CRC = struct.Struct(">I")


@dataclass(frozen=True)
class ContainerHeader:
    """Everything a container says about its content, read before any decoding."""

    version: int
    mode: str
    model_name: str
    fingerprint: bytes
    height: int
    width: int
    section_sizes: dict[str, int]  # name -> payload bytes, in file order
    total_bytes: int

    @property
    def overhead_bytes(self) -> int:
        """Bytes that are not payload: the header, the section table and the CRC."""
        return self.total_bytes - sum(self.section_sizes.values())


def write_container(encoded: EncodedImage, model_name: str, fingerprint: bytes) -> bytes:
    """Wrap a codec's sections into a complete `.osc` file."""
    name = model_name.encode()
    if not 1 <= len(name) <= 255:
        raise ConfigError(f"model name {model_name!r} must be 1 to 255 bytes of utf-8 to go into a stream")
    if len(fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"a fingerprint has {FINGERPRINT_BYTES} bytes, got {len(fingerprint)}")
    if encoded.mode not in MODES:
        raise ValueError(f"the container knows the modes {MODES}, not {encoded.mode!r}")
    if not (1 <= encoded.height < 1 << 32 and 1 <= encoded.width < 1 << 32):
        raise ValueError(f"cannot store an image size of {encoded.width}x{encoded.height}")
    if len(encoded.sections) > 255:
        raise ValueError("a container holds at most 255 sections")
    parts = [MAGIC, bytes([FORMAT_VERSION, MODES.index(encoded.mode), len(name)]), name, fingerprint]
    parts.append(struct.pack(">IIB", encoded.height, encoded.width, len(encoded.sections)))
    for section, payload in encoded.sections.items():
        label = section.encode()
        if not 1 <= len(label) <= 255:
            raise ValueError(f"section name {section!r} must be 1 to 255 bytes of utf-8")
        if len(payload) >= 1 << 32:
            raise ValueError(f"section {section!r} is too large for a container")
        parts += [bytes([len(label)]), label, struct.pack(">I", len(payload))]
    parts += list(encoded.sections.values())
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


class _Reader:
    """Reads fields in order; running out of bytes means the file was cut short."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, n: int) -> bytes:
        if self.offset + n > len(self.data):
            raise StreamError(f"file is truncated: it ends inside its header ({len(self.data)} bytes)")
        chunk = self.data[self.offset : self.offset + n]
        self.offset += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def uint32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise StreamError(f"file is corrupted: its {what} is not utf-8") from None


def read_container(data: bytes) -> tuple[ContainerHeader, EncodedImage]:
    """Check a `.osc` file completely (framing, version, length, CRC, fields) and split it.

    Raises `StreamError` for anything wrong; nothing here decodes a payload."""
    data = bytes(data)
    if not data:
        raise StreamError("file is empty")
    if data[: len(MAGIC)] != MAGIC:
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            raise StreamError(f"file is truncated: {len(data)} bytes")
        raise StreamError("not an onestep file (wrong magic number)")
    reader = _Reader(data)
    reader.take(len(MAGIC))
    version = reader.byte()
    if version != FORMAT_VERSION:
        raise StreamError(f"unknown format version {version} (this onestep reads version {FORMAT_VERSION})")
    flags = reader.byte()
    raw_name = reader.take(reader.byte())
    fingerprint = reader.take(FINGERPRINT_BYTES)
    height, width = reader.uint32(), reader.uint32()
    table = [(reader.take(reader.byte()), reader.uint32()) for _ in range(reader.byte())]

    header_bytes = reader.offset
    total = header_bytes + sum(size for _, size in table) + _CRC.size
    if len(data) < total:
        raise StreamError(f"file is truncated: {len(data)} bytes, its header announces {total}")
    if len(data) > total:
        raise StreamError(f"file has {len(data) - total} unexpected bytes after its end ({total} bytes)")
    if zlib.crc32(data[:-4]) != _CRC.unpack(data[-4:])[0]:
        raise StreamError("file is corrupted (CRC-32 mismatch)")

    # The CRC matched, so what follows only fails for files written by something other than us.
    mode_code = flags & _MODE_BITS
    if flags & ~_MODE_BITS or mode_code >= len(MODES):
        raise StreamError(f"unknown flags 0x{flags:02x} (this onestep knows the modes {', '.join(MODES)})")
    if not (1 <= height and 1 <= width and height * width <= MAX_PIXELS):
        raise StreamError(f"file claims an absurd image size of {width}x{height}")
    model_name = _text(raw_name, "model name")
    sections: dict[str, bytes] = {}
    offset = header_bytes
    for raw_label, size in table:
        label = _text(raw_label, "section name")
        if not label or label in sections:
            raise StreamError(f"file is corrupted: section name {label!r} is empty or repeated")
        sections[label] = data[offset : offset + size]
        offset += size
    header = ContainerHeader(
        version=version,
        mode=MODES[mode_code],
        model_name=model_name,
        fingerprint=fingerprint,
        height=height,
        width=width,
        section_sizes={k: len(v) for k, v in sections.items()},
        total_bytes=total,
    )
    return header, EncodedImage(sections=sections, height=height, width=width, mode=header.mode)
