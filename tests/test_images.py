"""read_image: every accepted kind of input, every refusal; write_png: exact and atomic."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from onestep.errors import ImageError
from onestep.images import AlphaDroppedWarning, read_image, write_png

RNG = np.random.default_rng(0)


def _rgb(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _hwc(tensor: torch.Tensor) -> np.ndarray:
    assert tensor.dtype == torch.uint8 and tensor.dim() == 3 and tensor.shape[0] == 3
    return tensor.permute(1, 2, 0).numpy()


def _read_quietly(path: Path) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        return read_image(path)


def test_rgb_png_is_exact(tmp_path: Path) -> None:
    pixels = _rgb()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    assert np.array_equal(_hwc(_read_quietly(tmp_path / "a.png")), pixels)


def test_greyscale_and_bilevel_fill_three_channels(tmp_path: Path) -> None:
    grey = _rgb()[:, :, 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    assert np.array_equal(_hwc(_read_quietly(tmp_path / "g.png")), np.repeat(grey[:, :, None], 3, 2))
    Image.fromarray(grey > 127).save(tmp_path / "b.png")
    assert np.array_equal(_hwc(_read_quietly(tmp_path / "b.png"))[:, :, 1], np.where(grey > 127, 255, 0))


def test_palette(tmp_path: Path) -> None:
    image = Image.fromarray(_rgb()).quantize(colors=7)
    image.save(tmp_path / "p.png")
    assert np.array_equal(_hwc(_read_quietly(tmp_path / "p.png")), np.asarray(image.convert("RGB")))


def test_sixteen_bit_png_is_rounded_not_truncated(tmp_path: Path) -> None:
    wide = RNG.integers(0, 65536, (4, 7, 3), dtype=np.uint16)
    wide[0, 0] = (1000, 65535, 127)  # 1000 / 257 = 3.89: rounds to 4, truncation gives 3
    rounded = np.floor(wide / 257 + 0.5).astype(np.uint8)
    (tmp_path / "rgb16.png").write_bytes(imagecodecs.png_encode(wide))
    got = _hwc(_read_quietly(tmp_path / "rgb16.png"))
    assert np.array_equal(got, rounded) and tuple(got[0, 0]) == (4, 255, 0)
    (tmp_path / "g16.png").write_bytes(imagecodecs.png_encode(np.ascontiguousarray(wide[:, :, 0])))
    assert np.array_equal(_hwc(_read_quietly(tmp_path / "g16.png")), np.repeat(rounded[:, :, :1], 3, 2))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    image = Image.fromarray(_rgb(3, 5))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).convert("RGB"))
    assert np.array_equal(_hwc(_read_quietly(tmp_path / "o.png")), expected)


def test_jpeg_applies_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_rgb(16, 24)).save(tmp_path / "a.jpg", exif=exif, quality=95)
    got = _read_quietly(tmp_path / "a.jpg")
    assert got.shape == (3, 24, 16)
    assert np.array_equal(_hwc(got), np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "a.jpg"))))


def test_webp_lossless_and_cmyk(tmp_path: Path) -> None:
    pixels = _rgb(8, 9)
    Image.fromarray(pixels).save(tmp_path / "a.webp", lossless=True)
    assert np.array_equal(_hwc(_read_quietly(tmp_path / "a.webp")), pixels)
    Image.fromarray(pixels).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    expected = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB"))
    assert np.array_equal(_hwc(_read_quietly(tmp_path / "c.jpg")), expected)


def test_alpha_opaque_is_silent_transparent_warns(tmp_path: Path) -> None:
    rgba = np.concatenate([_rgb(), np.full((6, 5, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    assert np.array_equal(_hwc(_read_quietly(tmp_path / "opaque.png")), rgba[:, :, :3])
    rgba[2, 3, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "hole.png")
    with pytest.warns(AlphaDroppedWarning, match="alpha is ignored"):
        got = read_image(tmp_path / "hole.png")
    assert np.array_equal(_hwc(got), rgba[:, :, :3])  # colours kept, not composited
    la = Image.fromarray(rgba[:, :, [0, 3]], mode="LA")
    la.save(tmp_path / "la.png")
    with pytest.warns(AlphaDroppedWarning):
        assert np.array_equal(_hwc(read_image(tmp_path / "la.png"))[:, :, 2], rgba[:, :, 0])
    palette = Image.fromarray(_rgb()).quantize(colors=4)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "pt.png", transparency=0)
    with pytest.warns(AlphaDroppedWarning):
        read_image(tmp_path / "pt.png")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims a size, with a tiny IDAT: a 'sparse' decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_refusals(tmp_path: Path) -> None:
    cases = {
        "missing.png": (None, "no such file"),
        "text.png": (b"hello, I am not an image\n", "not an image"),
        "empty.jpg": (b"", "not an image"),
        "huge.png": (_png_header_only(12000, 12000), "12000x12000, more than the limit"),
        "bomb.png": (_png_header_only(100000, 100000), "too large"),
        "zero.png": (_png_header_only(0, 10), "not an image"),
    }
    buffer = tmp_path / "full.png"
    Image.fromarray(_rgb(64, 64)).save(buffer)
    cases["cut.png"] = (buffer.read_bytes()[:300], "cannot read image")
    Image.fromarray(_rgb(64, 64)).save(buffer.with_suffix(".jpg"))
    cases["cut.jpg"] = (buffer.with_suffix(".jpg").read_bytes()[:400], "cannot read image")
    Image.new("RGB", (4, 4)).save(buffer.with_suffix(".eps"))  # Pillow reads EPS through Ghostscript: refused
    cases["a.eps"] = (buffer.with_suffix(".eps").read_bytes(), "not an image file in a supported format")
    for name, (content, message) in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(ImageError, match=message) as info:
            read_image(tmp_path / name)
        assert "\n" not in str(info.value), name
    with pytest.raises(ImageError, match="limit of 20 pixels"):
        read_image(buffer, max_pixels=20)
    Image.fromarray(np.zeros((3, 3), np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(ImageError, match="floating-point"):
        read_image(tmp_path / "f.tif")


def test_write_png_round_trip_and_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = torch.from_numpy(_rgb(7, 3)).permute(2, 0, 1)
    target = tmp_path / "out.png"
    write_png(target, image)
    assert torch.equal(_read_quietly(target), image)
    before = target.read_bytes()

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_png(target, torch.zeros(3, 2, 2, dtype=torch.uint8))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary file left behind
    with pytest.raises(ValueError):
        write_png(tmp_path / "bad.png", torch.zeros(3, 2, 2))
    assert not (tmp_path / "bad.png").exists()
