"""An AVIF file without its HEIF boxes: the AV1 bitstream alone, and the file rebuilt from it, byte for byte.

A still AVIF made by libavif is 275 bytes of boxes (ftyp, meta: hdlr, pitm, iloc, iinf, iprp with ispe, pixi,
av1C, colr, ipma; the mdat header) around the AV1 data, and the AV1 data starts with a 2-byte temporal
delimiter. At the base layer's lowest rates (about 700 bytes per Kodak image) that is over a third of the file,
and everything in it follows from the image size and the AV1 sequence header. So the stream keeps only the AV1
OBUs after the temporal delimiter; the decoder rebuilds the file Pillow reads. The encoder keeps the short form
only when rebuilding gives back exactly the file libavif wrote (`strip` checks it), so a libavif that writes
other boxes or properties falls back to storing the whole file, never to a file that decodes differently.
"""

from __future__ import annotations

import struct

TEMPORAL_DELIMITER = b"\x12\x00"  # OBU type 2 with a size field, size 0
_SEQUENCE_HEADER_OBU = 0x0A  # OBU type 1 with a size field, no extension
# One item (id 1, type av01, named "Color"), 8-bit RGB as 3 planes, colr nclx 1/13/6 full range (sRGB with
# libavif's default YUV matrix): what libavif writes for an 8-bit RGB picture from Pillow.
_FTYP = b"ftypavif\x00\x00\x00\x00avifmif1miafMA1B"
_HDLR = b"hdlr" + bytes(8) + b"pict" + bytes(13)
_PITM = b"pitm" + bytes(4) + b"\x00\x01"
_IINF = b"iinf" + bytes(4) + b"\x00\x01" + struct.pack(">I", 26) + b"infe\x02\x00\x00\x00\x00\x01\x00\x00av01Color\x00"
_PIXI = b"pixi" + bytes(4) + b"\x03\x08\x08\x08"
_COLR = b"colrnclx\x00\x01\x00\x0d\x00\x06\x80"
_IPMA = b"ipma" + bytes(4) + b"\x00\x00\x00\x01\x00\x01\x04\x01\x02\x83\x04"


def _box(body: bytes) -> bytes:
    """`body` starts with the 4-byte box type."""
    return struct.pack(">I", 4 + len(body)) + body


def _bits(data: bytes, start: int, count: int) -> int:
    """`count` bits of `data` from bit `start`, most significant first."""
    value = int.from_bytes(data, "big") >> (8 * len(data) - start - count)
    return value & ((1 << count) - 1)


def _av1_config(obus: bytes, width: int, height: int) -> bytes:
    """The av1C box's 4 bytes from the sequence header OBU that starts `obus`, after checking that the header
    describes a `width` x `height` still picture. A reduced still-picture header starts with seq_profile (3
    bits), still_picture, reduced_still_picture_header, seq_level_idx[0] (5), frame_width_bits_minus_1 (4),
    frame_height_bits_minus_1 (4), max_frame_width_minus_1, max_frame_height_minus_1 (AV1 spec 5.5.1)."""
    if len(obus) < 3 or obus[0] != _SEQUENCE_HEADER_OBU or obus[1] > 0x7F or len(obus) < 2 + obus[1]:
        raise ValueError("the AV1 data does not start with a sequence header")
    header = obus[2 : 2 + obus[1]]
    if len(header) < 5 or _bits(header, 3, 2) != 0b11:
        raise ValueError("the AV1 sequence header is not a reduced still-picture header")
    width_bits, height_bits = _bits(header, 10, 4) + 1, _bits(header, 14, 4) + 1
    if 18 + width_bits + height_bits > 8 * len(header):
        raise ValueError("the AV1 sequence header is cut short")
    coded = (_bits(header, 18, width_bits) + 1, _bits(header, 18 + width_bits, height_bits) + 1)
    if coded != (width, height):
        raise ValueError(f"the AV1 data is {coded[0]}x{coded[1]}, not {width}x{height}")
    profile, level = _bits(header, 0, 3), _bits(header, 5, 5)
    # 8-bit 4:2:0, chroma sample position unknown: the only colour layout the rebuilt file describes
    return bytes((0x81, (profile << 5) | level, 0x0C, 0x00))


def rebuild(obus: bytes, width: int, height: int) -> bytes:
    """The AVIF file of AV1 data `obus` (without the temporal delimiter) of a `width` x `height` picture.
    ValueError where `obus` has no usable sequence header or is not of that size."""
    av1c = _av1_config(obus, width, height)
    mdat_payload = TEMPORAL_DELIMITER + obus
    ispe = _box(b"ispe" + bytes(4) + struct.pack(">II", width, height))
    ipco = _box(b"ipco" + ispe + _box(_PIXI) + _box(b"av1C" + av1c) + _box(_COLR))
    iprp = _box(b"iprp" + ipco + _box(_IPMA))

    def meta(data_offset: int) -> bytes:
        iloc = b"iloc" + bytes(4) + b"\x44\x00\x00\x01\x00\x01\x00\x00\x00\x01"
        iloc += struct.pack(">II", data_offset, len(mdat_payload))
        return _box(b"meta" + bytes(4) + _box(_HDLR) + _box(_PITM) + _box(iloc) + _box(_IINF) + iprp)

    ftyp = _box(_FTYP)
    head = ftyp + meta(0)  # the data offset's value does not change the boxes' sizes
    head = ftyp + meta(len(head) + 8)
    return head + _box(b"mdat" + mdat_payload)


def strip(avif: bytes, width: int, height: int) -> bytes | None:
    """The AV1 data of an AVIF file when `rebuild` gives the file back exactly, else None."""
    start = _mdat_data_start(avif)
    if start is None or avif[start : start + len(TEMPORAL_DELIMITER)] != TEMPORAL_DELIMITER:
        return None
    obus = avif[start + len(TEMPORAL_DELIMITER) :]
    try:
        return obus if rebuild(obus, width, height) == avif else None
    except ValueError:
        return None


def _mdat_data_start(avif: bytes) -> int | None:
    """Where the mdat box's data starts in a file whose last box is mdat, or None."""
    offset = 0
    while offset + 8 <= len(avif):
        size, kind = struct.unpack(">I4s", avif[offset : offset + 8])
        if kind == b"mdat":
            return offset + 8 if offset + size == len(avif) else None
        if size < 8:
            return None
        offset += size
    return None
