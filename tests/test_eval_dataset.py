"""Named evaluation protocols: Kodak as is, CLIC2020-style resize and centre crop, full images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from onestep.errors import ConfigError
from onestep.eval.dataset import apply_protocol, load_folder


def _pixels(height: int, width: int) -> torch.Tensor:
    yy, xx = np.mgrid[0:height, 0:width]
    return torch.from_numpy(np.stack([xx % 256, yy % 256, (xx + yy) % 256]).astype(np.uint8))


@pytest.mark.parametrize("height, width", [(1000, 1500), (900, 800), (600, 700)])
def test_clic2020_style_gives_the_centre_768_square_of_the_short_side_resized_image(height, width):
    out = apply_protocol(_pixels(height, width), "clic2020")
    assert out.shape == (3, 768, 768) and out.dtype == torch.uint8
    # the centre crop of the resized image: compare with PIL doing the same steps
    scale = 768 / min(height, width)
    size = (max(768, round(width * scale)), max(768, round(height * scale)))
    resized = np.asarray(Image.fromarray(_pixels(height, width).permute(1, 2, 0).numpy()).resize(size, Image.BICUBIC))
    left, top = (size[0] - 768) // 2, (size[1] - 768) // 2
    assert np.array_equal(out.permute(1, 2, 0).numpy(), resized[top : top + 768, left : left + 768])


def test_kodak_and_full_keep_images_as_they_are_and_unknown_names_are_errors(tmp_path):
    pixels = _pixels(40, 56)
    assert apply_protocol(pixels, "kodak") is pixels and apply_protocol(pixels, "full") is pixels
    with pytest.raises(ConfigError, match="unknown protocol 'clic'"):
        apply_protocol(pixels, "clic")
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(tmp_path / "a.png")
    (image,) = load_folder(tmp_path, protocol="clic2020")
    assert image.pixels.shape == (3, 768, 768) and image.digest != load_folder(tmp_path)[0].digest
