"""Fixed-length index packing, OneDC's layout: one big-endian integer, zero padding at the front."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onestep.entropy import pack_indices, packed_size, unpack_indices
from onestep.errors import StreamError


def big_integer_layout(values: list[int], bits: int) -> bytes:
    """The digest's definition, literally: concatenated MSB-first fields read as one integer."""
    text = "".join(format(v, f"0{bits}b") for v in values)
    return int(text or "0", 2).to_bytes(packed_size(len(values), bits), "big")


def test_six_indices_make_eleven_bytes_with_front_padding():
    values = [16383, 0, 1, 8192, 12345, 7]
    data = pack_indices(torch.tensor(values), 14)
    assert len(data) == 11  # 84 bits
    assert data[0] >> 4 == 0  # the 4 padding bits are the first nibble
    assert data[0] & 0x0F == 0x0F  # ...followed by the top of 16383
    assert data == big_integer_layout(values, 14)
    assert unpack_indices(data, 6, 14).tolist() == values


def test_onedc_z_size():
    assert len(pack_indices(np.zeros(96, dtype=np.int64), 14)) == 168  # 768 x 512 image


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30).flatmap(lambda b: st.tuples(st.just(b), st.lists(st.integers(0, (1 << b) - 1), max_size=70))))
def test_round_trip_and_layout(bits_and_values):
    bits, values = bits_and_values
    data = pack_indices(np.array(values, dtype=np.int64), bits)
    assert data == big_integer_layout(values, bits)
    out = unpack_indices(data, len(values), bits)
    assert out.dtype == np.int64 and out.tolist() == values


def test_shapes_flatten_in_c_order():
    idx = torch.arange(12).view(1, 3, 4)
    assert pack_indices(idx, 14) == big_integer_layout(list(range(12)), 14)
    transposed = idx.transpose(1, 2)  # not contiguous: its logical C order counts
    assert pack_indices(transposed, 14) == big_integer_layout(transposed.flatten().tolist(), 14)


def test_empty():
    assert pack_indices(torch.zeros(0, dtype=torch.int64), 14) == b""
    assert unpack_indices(b"", 0, 14).shape == (0,)


def test_corrupt_fields_raise_stream_error():
    data = pack_indices(np.array([1, 2, 3, 4, 5, 6]), 14)
    with pytest.raises(StreamError, match="bytes"):
        unpack_indices(data[:-1], 6, 14)
    with pytest.raises(StreamError, match="bytes"):
        unpack_indices(data + b"\0", 6, 14)
    with pytest.raises(StreamError, match="padding"):
        unpack_indices(bytes([data[0] | 0x80]) + data[1:], 6, 14)
    with pytest.raises(StreamError, match="codebook"):
        unpack_indices(pack_indices(np.array([999, 1000]), 10), 2, 10, num_codes=1000)
    assert unpack_indices(pack_indices(np.array([999, 0]), 10), 2, 10, num_codes=1000).tolist() == [999, 0]


def test_bad_pack_arguments():
    with pytest.raises(ValueError, match="0..16383"):
        pack_indices(np.array([16384]), 14)
    with pytest.raises(ValueError, match="0..16383"):
        pack_indices(np.array([-1]), 14)
    with pytest.raises(ValueError, match="integers"):
        pack_indices(np.array([1.5]), 14)
    with pytest.raises(ValueError, match="bits"):
        pack_indices(np.array([1]), 0)
