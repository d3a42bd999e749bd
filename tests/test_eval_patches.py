"""FID/256 patch extraction: counts for several image sizes and which pixels each patch holds."""

import pytest
import torch

from onestep.eval.patches import fid_patches


@pytest.mark.parametrize(
    "height, width, expected",
    [
        (200, 300, 0),  # smaller than a patch
        (256, 256, 1),  # no shifted pass below 384 px
        (383, 600, 2),  # one side short of 384: still no shifted pass
        (384, 384, 2),  # 1 + 1 shifted
        (512, 768, 8),  # Kodak landscape: 6 + 2
        (768, 512, 8),  # Kodak portrait
        (511, 767, 4),  # 1 x 2 + 1 x 2 shifted
        (1024, 1024, 25),  # 16 + 9
    ],
)
def test_patch_counts(height, width, expected):
    assert fid_patches(torch.zeros(3, height, width, dtype=torch.uint8)).shape == (expected, 3, 256, 256)


def test_patches_are_the_grid_then_the_grid_shifted_by_128():
    image = torch.arange(3 * 512 * 768, dtype=torch.int64).reshape(3, 512, 768)
    patches = fid_patches(image)
    assert torch.equal(patches[0], image[:, :256, :256])
    assert torch.equal(patches[1], image[:, :256, 256:512])  # row-major
    assert torch.equal(patches[3], image[:, 256:512, :256])
    assert torch.equal(patches[6], image[:, 128:384, 128:384])
    assert torch.equal(patches[7], image[:, 128:384, 384:640])
