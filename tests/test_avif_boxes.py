"""The AVIF base layer without its HEIF boxes: the file libavif wrote comes back byte for byte, streams in the
short form decode to the same pixels as the whole file, old (whole-file) streams still decode, and damaged
short streams are refused in one line."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, features

from onestep.codecs import avif_boxes
from onestep.codecs.avif_base import FORMAT_V1, FORMAT_V2, AvifBaseCodec
from onestep.errors import ConfigError, StreamError

pytestmark = pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF support")
LEVELS = ((4, 0), (2, 20), (1, 40))


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8))
    field = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC)).astype(np.int16)
    return np.clip(field + rng.integers(-12, 13, field.shape), 0, 255).astype(np.uint8)


def avif_file(array: np.ndarray, quality: int, subsampling: str = "4:2:0") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="AVIF", quality=quality, subsampling=subsampling, speed=6)
    return buffer.getvalue()


@pytest.mark.parametrize(("height", "width", "quality"), [(64, 96, 0), (128, 192, 40), (200, 136, 90)])
def test_strip_then_rebuild_gives_the_file_back(height: int, width: int, quality: int) -> None:
    avif = avif_file(photo(height, width), quality)
    obus = avif_boxes.strip(avif, width, height)
    assert obus is not None
    assert len(avif) - len(obus) == 277
    assert avif_boxes.rebuild(obus, width, height) == avif


def test_files_the_rebuild_cannot_describe_are_not_stripped() -> None:
    array = photo(64, 96)
    assert avif_boxes.strip(avif_file(array, 30, "4:4:4"), 96, 64) is None  # another profile and av1C
    assert avif_boxes.strip(avif_file(array, 30), 96, 72) is None  # not the size the file says


def test_short_and_whole_file_streams_decode_to_the_same_pixels() -> None:
    codec = AvifBaseCodec(levels=LEVELS, default_quality=0)
    array = photo(96, 128, seed=3)
    for quality, (divisor, avif_quality) in enumerate(LEVELS):
        short = codec.encode_base(array, quality)
        assert short[0] & 0xF0 == FORMAT_V2
        reduced = np.asarray(Image.fromarray(array).resize((128 // divisor, 96 // divisor), Image.Resampling.LANCZOS))
        whole = bytes((FORMAT_V1, quality)) + avif_file(reduced, avif_quality)
        assert len(whole) - len(short) == 277
        assert np.array_equal(codec.decode_base(short, (96, 128))[0], codec.decode_base(whole, (96, 128))[0])


def test_a_codec_that_cannot_strip_writes_the_whole_file() -> None:
    codec = AvifBaseCodec(levels=LEVELS, default_quality=0, subsampling="4:4:4")
    payload = codec.encode_base(photo(64, 64), 2)
    assert payload[0] & 0xF0 == FORMAT_V1
    assert codec.decode_base(payload, (64, 64))[0].shape == (64, 64, 3)


@pytest.mark.parametrize("cut", [1, 3, 40])
def test_damaged_short_streams_are_refused(cut: int) -> None:
    codec = AvifBaseCodec(levels=LEVELS, default_quality=0)
    payload = codec.encode_base(photo(64, 96), 1)
    damaged = payload[: 2 + cut] if cut < 40 else payload[:2] + bytes(len(payload) - 2)
    with pytest.raises(StreamError) as error:
        codec.decode_base(damaged, (64, 96))
    assert "\n" not in str(error.value)


def test_speed_per_size_is_an_encoder_setting_only() -> None:
    """Three speeds (full, 1/2, 1/4 size) pick the encoder's effort per level; any decoder reads the result."""
    array = photo(64, 64, seed=5)
    fast = AvifBaseCodec(levels=LEVELS, default_quality=0)
    slow_reduced = AvifBaseCodec(levels=LEVELS, default_quality=0, speed=(6, 2, 2))
    assert slow_reduced.encode_base(array, 2) == fast.encode_base(array, 2)  # full size: speed 6 in both
    payload = slow_reduced.encode_base(array, 1)
    assert payload != fast.encode_base(array, 1)
    assert np.array_equal(fast.decode_base(payload, (64, 64))[0], slow_reduced.decode_base(payload, (64, 64))[0])
    with pytest.raises(ConfigError):
        AvifBaseCodec(levels=LEVELS, default_quality=0, speed=(6, 5))
    with pytest.raises(ConfigError):
        AvifBaseCodec(levels=LEVELS, default_quality=0, speed=11)
