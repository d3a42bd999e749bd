"""The `.osc` container: what a compressed file looks like on disk. It knows no method and imports no torch.

A codec produces named byte strings (sections) and a mode name; this module wraps them with everything a
decoder needs to refuse a file before touching a network: a magic number, the format version, which model made
the stream (name + weights fingerprint), the original image size and a CRC-32. All integers are big-endian.

Version 2 (written):

    offset  bytes  field
    0       4      magic b"\\x89OSC" (the high first byte catches text-mode mangling, as in PNG)
    4       1      format version (2)
    5       1      flags: bit 0 = the image was greyscale (decode to one channel); bits 1-7 reserved (0)
    6       1      m = length of the mode name
    7       m      mode name, utf-8 (the codec's own: "normal", "z-only", ...)
    7+m     1      n = length of the model name
    8+m     n      model name, utf-8
    8+m+n   8      fingerprint of the model's weights
    16+m+n  4      original height (uint32)
    20+m+n  4      original width (uint32)
    24+m+n  1      k = number of sections
    ...            k times: 1 byte name length, the name (utf-8), uint32 payload length
    ...            the k payloads, in table order
    end-4   4      CRC-32 of every byte before it

Overhead: 29 bytes + the mode name + the model name + 5 bytes and the name per section (51 bytes for a
5-letter model name, mode "normal", sections "y" and "z").

Version 1 (read only): no mode name; byte 5 held the mode as a code (0 normal, 1 z-only) and there was no grey
flag; the rest as above from the model name on.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from .errors import ConfigError, StreamError

MAGIC = b"\x89OSC"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
V1_MODES = ("normal", "z-only")  # version 1 stored the mode as an index in this tuple
FINGERPRINT_BYTES = 8
MAX_PIXELS = 1 << 32  # more than any model can decode: a larger claim is corruption
GREY_FLAG = 0x01
_CRC = struct.Struct(">I")


@dataclass
class EncodedImage:
    """The content of a compressed file, before the container wraps it: the codec's sections, the original
    image size, the codec's mode, and whether the image was greyscale."""

    sections: dict[str, bytes]
    height: int
    width: int
    mode: str = "normal"
    grey: bool = False


@dataclass(frozen=True)
class ContainerHeader:
    """Everything a container says about its content, read before any decoding."""

    version: int
    mode: str
    grey: bool
    model_name: str
    fingerprint: bytes
    height: int
    width: int
    section_sizes: dict[str, int] = field(default_factory=dict)  # name -> payload bytes, in file order
    total_bytes: int = 0

    @property
    def overhead_bytes(self) -> int:
        """Bytes that are not payload: the header, the section table and the CRC."""
        return self.total_bytes - sum(self.section_sizes.values())


def _short_text(text: str, what: str) -> bytes:
    raw = text.encode()
    if not 1 <= len(raw) <= 255:
        raise ConfigError(f"{what} {text!r} must be 1 to 255 bytes of utf-8 to go into a stream")
    return raw


def write_container(encoded: EncodedImage, model_name: str, fingerprint: bytes) -> bytes:
    """Wrap a codec's sections into a complete `.osc` file (the current format version)."""
    name = _short_text(model_name, "model name")
    mode = _short_text(encoded.mode, "mode name")
    if len(fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"a fingerprint has {FINGERPRINT_BYTES} bytes, got {len(fingerprint)}")
    if not (1 <= encoded.height < 1 << 32 and 1 <= encoded.width < 1 << 32):
        raise ValueError(f"cannot store an image size of {encoded.width}x{encoded.height}")
    if len(encoded.sections) > 255:
        raise ValueError("a container holds at most 255 sections")
    flags = GREY_FLAG if encoded.grey else 0
    parts = [MAGIC, bytes([FORMAT_VERSION, flags, len(mode)]), mode, bytes([len(name)]), name, fingerprint]
    parts.append(struct.pack(">IIB", encoded.height, encoded.width, len(encoded.sections)))
    for section, payload in encoded.sections.items():
        label = _short_text(section, "section name")
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
        text = raw.decode()
    except UnicodeDecodeError:
        raise StreamError(f"file is corrupted: its {what} is not utf-8") from None
    if not text:
        raise StreamError(f"file is corrupted: its {what} is empty")
    return text


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
    if version not in READABLE_VERSIONS:
        raise StreamError(f"unknown format version {version} (this onestep reads versions 1 and 2)")
    flags = reader.byte()
    raw_mode = reader.take(reader.byte()) if version >= 2 else b""
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
    if version == 1:
        if flags >= len(V1_MODES):
            raise StreamError(f"unknown flags 0x{flags:02x} (version 1 knows the modes {', '.join(V1_MODES)})")
        mode, grey = V1_MODES[flags], False
    else:
        if flags & ~GREY_FLAG:
            raise StreamError(f"unknown flags 0x{flags:02x} (this onestep knows only the grey flag, 0x01)")
        mode, grey = _text(raw_mode, "mode name"), bool(flags & GREY_FLAG)
    if not (1 <= height and 1 <= width and height * width <= MAX_PIXELS):
        raise StreamError(f"file claims an absurd image size of {width}x{height}")
    model_name = _text(raw_name, "model name")
    sections: dict[str, bytes] = {}
    offset = header_bytes
    for raw_label, size in table:
        label = _text(raw_label, "section name")
        if label in sections:
            raise StreamError(f"file is corrupted: section name {label!r} is repeated")
        sections[label] = data[offset : offset + size]
        offset += size
    header = ContainerHeader(
        version=version,
        mode=mode,
        grey=grey,
        model_name=model_name,
        fingerprint=fingerprint,
        height=height,
        width=width,
        section_sizes={k: len(v) for k, v in sections.items()},
        total_bytes=total,
    )
    return header, EncodedImage(sections=sections, height=height, width=width, mode=mode, grey=grey)


def describe(data: bytes) -> dict[str, object]:
    """What a file holds, read from its header alone (no model, no torch). bpp counts every byte of the file."""
    header, _ = read_container(data)
    return {
        "model": header.model_name,
        "fingerprint": header.fingerprint.hex(),
        "format_version": header.version,
        "mode": header.mode,
        "grey": header.grey,
        "width": header.width,
        "height": header.height,
        "bytes": len(data),
        "bpp": 8 * len(data) / (header.height * header.width),
        "sections": dict(header.section_sizes),
        "overhead_bytes": header.overhead_bytes,
    }
