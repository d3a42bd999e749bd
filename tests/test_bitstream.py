"""The .osc container: exact layout, every refusal, and fuzzing that only StreamError ever escapes."""

from __future__ import annotations

import struct
import zlib

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from onestep.bitstream import FORMAT_VERSION, MAGIC, EncodedImage, read_container, write_container
from onestep.errors import ConfigError, OneStepError, StreamError

FINGERPRINT = bytes(range(8))


def _sample(mode: str = "normal") -> EncodedImage:
    return EncodedImage(sections={"y": b"\x01\x02\x03\x04\x05", "z": b"\xff" * 11}, height=125, width=187, mode=mode)


def _valid() -> bytes:
    return write_container(_sample(), "tiny", FINGERPRINT)


def test_round_trip_keeps_everything() -> None:
    for mode in ("normal", "z-only", "a-mode-the-container-never-heard-of"):
        for grey in (False, True):
            sample = _sample(mode)
            sample.grey = grey
            data = write_container(sample, "tiny-ü", FINGERPRINT)
            header, encoded = read_container(data)
            assert encoded == sample
            assert (header.model_name, header.fingerprint, header.version) == ("tiny-ü", FINGERPRINT, FORMAT_VERSION)
            assert (header.height, header.width, header.mode, header.grey) == (125, 187, mode, grey)
            assert header.section_sizes == {"y": 5, "z": 11}
            assert header.total_bytes == len(data)
            assert header.overhead_bytes == len(data) - 16


def test_layout_is_as_documented() -> None:
    data = _valid()
    name = b"tiny"
    expected_header = (
        MAGIC
        + bytes([2, 0, 6])
        + b"normal"
        + bytes([len(name)])
        + name
        + FINGERPRINT
        + struct.pack(">II", 125, 187)
        + bytes([2])
    ) + (b"\x01y" + struct.pack(">I", 5) + b"\x01z" + struct.pack(">I", 11))
    body = expected_header + b"\x01\x02\x03\x04\x05" + b"\xff" * 11
    assert data == body + struct.pack(">I", zlib.crc32(body))
    # the documented overhead: 29 bytes + mode name + model name + (5 + section name) per section
    assert len(data) - 16 == 29 + 6 + 4 + 2 * 6


def test_empty_sections_and_no_sections() -> None:
    for sections in ({}, {"z": b""}):
        encoded = EncodedImage(sections=sections, height=1, width=1)
        assert read_container(write_container(encoded, "m", FINGERPRINT))[1] == encoded


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"PNG\x89" + d[4:], "not an onestep file"),
        (lambda d: b"", "empty"),
        (lambda d: d[:2], "truncated"),
        (lambda d: d[:4] + bytes([7]) + d[5:], "unknown format version 7"),
        (lambda d: d[:20], "truncated"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"\x00", "1 unexpected bytes"),
        (lambda d: d[:-6] + bytes([d[-6] ^ 0x10]) + d[-5:], "CRC-32 mismatch"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "CRC-32 mismatch"),
    ],
)
def test_refusals(mutate, message: str) -> None:
    with pytest.raises(StreamError, match=message):
        read_container(mutate(_valid()))


def _recrc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def test_refusals_behind_a_valid_crc() -> None:
    body = _valid()[:-4]
    name_at = 7 + len("normal") + 1
    size_at = name_at + 4 + 8
    with pytest.raises(StreamError, match="unknown flags"):
        read_container(_recrc(body[:5] + b"\x05" + body[6:]))
    with pytest.raises(StreamError, match="mode name is not utf-8"):
        read_container(_recrc(body[:7] + b"\xff" + body[8:]))
    with pytest.raises(StreamError, match="absurd image size of 187x0"):
        read_container(_recrc(body[:size_at] + b"\x00" * 4 + body[size_at + 4 :]))
    with pytest.raises(StreamError, match="absurd"):
        read_container(_recrc(body[:size_at] + b"\xff" * 8 + body[size_at + 8 :]))
    with pytest.raises(StreamError, match="model name is not utf-8"):
        read_container(_recrc(body[:name_at] + b"\xff" + body[name_at + 1 :]))
    table = size_at + 9  # first section name byte
    with pytest.raises(StreamError, match="repeated"):
        read_container(_recrc(body[: table + 1] + b"z" + body[table + 2 :]))


def test_writer_refuses_bad_names() -> None:
    with pytest.raises(ConfigError):
        write_container(_sample(), "", FINGERPRINT)
    with pytest.raises(ConfigError):
        write_container(_sample(), "x" * 256, FINGERPRINT)
    with pytest.raises(ConfigError):
        write_container(_sample(mode=""), "m", FINGERPRINT)


def _read_only_stream_errors(data: bytes) -> None:
    try:
        read_container(data)
    except StreamError as e:
        assert "\n" not in str(e)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_raise_only_stream_error(data: bytes) -> None:
    _read_only_stream_errors(data)
    _read_only_stream_errors(MAGIC + bytes([FORMAT_VERSION]) + data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_files_raise_only_stream_error(draw) -> None:
    data = bytearray(_valid())
    for _ in range(draw.draw(st.integers(1, 4))):
        at = draw.draw(st.integers(0, len(data) - 1))
        data[at] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(data) + 3))
    tail = draw.draw(st.binary(max_size=3))
    mutated = bytes(data[:cut]) + tail
    _read_only_stream_errors(mutated)
    _read_only_stream_errors(_recrc(mutated))  # also get past the CRC to reach the field checks


@pytest.fixture(scope="module")
def tiny_streams() -> tuple[object, list[bytes]]:
    from tiny import tiny_pipeline

    from onestep import api

    model = tiny_pipeline(0)
    image = torch.randint(0, 256, (3, 9, 13), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return model, [api.compress(model, image, mode=mode) for mode in ("normal", "z-only")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_whole_decompress_path_raises_only_onestep_errors(tiny_streams, draw) -> None:
    """Cut or damaged files never crash decompress; a recomputed CRC lets the damage reach the codec."""
    from onestep import api

    model, streams = tiny_streams
    original = draw.draw(st.sampled_from(streams))
    payload_start = len(original) - sum(read_container(original)[0].section_sizes.values()) - 4
    damage = draw.draw(st.sampled_from(["cut", "anywhere", "payload"]))
    if damage == "cut":
        candidates = [original[: draw.draw(st.integers(0, len(original) - 1))]]
    else:
        data = bytearray(original)
        first = payload_start if damage == "payload" else 0
        for _ in range(draw.draw(st.integers(1, 3))):
            data[draw.draw(st.integers(first, len(data) - 5))] = draw.draw(st.integers(0, 255))
        candidates = [bytes(data), _recrc(bytes(data[:-4]))]
    for candidate in candidates:
        try:
            image = api.decompress(model, candidate)
        except OneStepError as e:
            assert "\n" not in str(e)
            event(str(e)[:40])
        else:
            # a changed size field or grey flag with a valid CRC is a valid file: the output follows the header
            header = read_container(candidate)[0]
            channels = 1 if header.grey else 3
            assert image.dtype == torch.uint8 and image.shape == (channels, header.height, header.width)
            event("decoded")
