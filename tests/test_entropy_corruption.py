"""Corrupt or truncated streams: the decoder raises StreamError or returns symbols, never anything else,
and never hangs (the work is bounded by the indexes asked for)."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onestep.entropy import GaussianConditional
from onestep.errors import StreamError

GC = GaussianConditional()
G = torch.Generator().manual_seed(0)
INDEXES = [torch.randint(0, 256, (2, 8, 9), generator=G) for _ in range(4)]
SYMBOLS = [torch.round(torch.randn(i.shape, generator=G) * GC.scale_table[i] * 1.5).int() for i in INDEXES]
SYMBOLS[1][0, 0, :3] = torch.tensor([30000, -(1 << 20), 60])  # escapes too


def encode() -> bytes:
    enc = GC.encoder()
    for sym, idx in zip(SYMBOLS, INDEXES):
        enc.add(sym, idx)
    return enc.finish()


STREAM = encode()


def decode_all(data: bytes) -> list[torch.Tensor]:
    dec = GC.decoder(data)
    out = [dec.read(idx) for idx in INDEXES]
    dec.finish()
    return out


def decodes_or_stream_error(data: bytes) -> bool:
    """True if decoding raised StreamError; any other exception fails the test."""
    try:
        decode_all(data)
    except StreamError:
        return True
    return False


def test_clean_stream_decodes():
    assert all(torch.equal(a, b) for a, b in zip(decode_all(STREAM), SYMBOLS))


def test_extra_data_is_detected():
    assert decodes_or_stream_error(STREAM + b"\x01\x02\x03\x04")
    assert decodes_or_stream_error(STREAM + b"\0" * (4 - len(STREAM) % 4) + b"\x07")


def test_stream_ending_in_a_zero_word_is_rejected():
    with pytest.raises(StreamError):
        GC.decoder(b"\x05\x00\x00\x00\x00\x00\x00\x00")


def test_truncation_is_mostly_detected():
    """ANS cannot always tell (an exhausted coder keeps decoding zeros), but most cuts show."""
    detected = sum(decodes_or_stream_error(STREAM[:n]) for n in range(len(STREAM)))
    assert detected >= 0.9 * len(STREAM)


def test_reading_more_than_was_written_is_detected_or_harmless():
    dec = GC.decoder(STREAM)
    for idx in INDEXES:
        dec.read(idx)
    try:
        dec.read(torch.full((1000,), 255))
        dec.finish()
    except StreamError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data):
    decodes_or_stream_error(data)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 8 * len(STREAM) - 1), st.integers(0, len(STREAM)), st.binary(max_size=8))
def test_flipped_cut_or_spliced_streams_never_crash(bit, cut, junk):
    flipped = bytearray(STREAM)
    flipped[bit // 8] ^= 1 << (bit % 8)
    decodes_or_stream_error(bytes(flipped))
    decodes_or_stream_error(STREAM[:cut] + junk + STREAM[cut:])
