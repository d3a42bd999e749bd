"""Baseline codecs make real files of their format, decode them, and trade bytes for quality."""

import numpy as np
import pytest
import torch

from onestep.errors import ConfigError
from onestep.eval.baselines import BASELINES, DOWNSCALED_BASELINES, SIZE_HEADER, any_baseline, baseline
from onestep.eval.fidelity import psnr

MAGIC = {
    "jpeg": lambda data: data[:3] == b"\xff\xd8\xff",
    "webp": lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP",
    "avif": lambda data: data[4:8] == b"ftyp" and b"avif" in data[8:32],
    "jxl": lambda data: data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n",
}


def _image() -> torch.Tensor:
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float32)
    noise = 20 * np.random.default_rng(0).standard_normal((3, 48, 64))
    pixels = np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=0) + noise
    return torch.from_numpy(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("name", BASELINES)
def test_round_trip_with_more_bytes_for_more_quality(name):
    codec = baseline(name)
    low, high = codec.settings[0], codec.settings[-1]  # sweeps go from lowest to highest rate
    image = _image()
    sizes, qualities = [], []
    for setting in (low, high):
        data = codec.encode(setting, image)
        assert MAGIC[name](data), f"{name} did not write a {name} file"
        decoded = codec.decode(setting, data)
        assert decoded.shape == image.shape and decoded.dtype == torch.uint8
        sizes.append(len(data))
        qualities.append(psnr(image, decoded))
    assert sizes[0] < sizes[1] and qualities[0] < qualities[1]


def test_cache_key_names_library_version_and_setting():
    codec = baseline("jpeg", settings=(10, 20))
    assert codec.settings == (10, 20)
    assert "libjpeg-turbo" in codec.cache_key(10) and codec.cache_key(10) != codec.cache_key(20)


def test_unknown_baseline_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown baseline codec 'bpg'"):
        baseline("bpg")


@pytest.mark.parametrize("name", DOWNSCALED_BASELINES)
def test_downscaled_baselines_code_a_smaller_image_and_return_full_size(name):
    base_name, factor = name.split("-down")[0], int(name[-1])
    codec, full = any_baseline(name), any_baseline(base_name, settings=any_baseline(name).settings)
    image = torch.cat([_image(), _image()], dim=2)  # 48 x 128
    setting = codec.settings[len(codec.settings) // 2]
    data = codec.encode(setting, image)
    assert SIZE_HEADER.unpack_from(data) == (128, 48)  # the original size travels with the file, counted in bpp
    assert MAGIC[base_name](data[SIZE_HEADER.size :]), f"{name} did not write a {base_name} file after its header"
    decoded = codec.decode(setting, data)
    assert decoded.shape == image.shape and decoded.dtype == torch.uint8
    # the coded image has 1/factor^2 of the pixels: far fewer bytes than the full-size file at the same setting
    assert len(data) < len(full.encode(setting, image))
    assert codec.label.endswith(f"↓{factor}x") and "downscaled" in codec.description
    assert codec.cache_key(setting) != full.cache_key(setting)


def test_downscaled_names_are_checked():
    with pytest.raises(ConfigError, match="unknown baseline codec 'avif-down3'"):
        any_baseline("avif-down3")
    with pytest.raises(ConfigError, match="unknown baseline codec 'jpeg-down2'"):
        any_baseline("jpeg-down2")
