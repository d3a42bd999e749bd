"""EfficientNet-Lite0 and the offline perceptual metrics built on it (ENL0-dist, FD-ENL0 features)."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from onestep.errors import ModelError
from onestep.eval.efficientnet_variants import VARIANTS, load_efficientnet_lite
from onestep.eval.perceptual import EfficientNetDistance, EfficientNetPooledFeatures
from onestep.nn.efficientnet_lite import EfficientNetLite0, load_efficientnet_lite0

KODAK = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kodak"


@pytest.fixture(scope="module")
def backbone():
    try:
        return load_efficientnet_lite0()
    except ModelError as e:
        pytest.skip(f"EfficientNet-Lite0 ImageNet weights unavailable: {e}")


def _classify_kodak_parrots(network: EfficientNetLite0, resolution: int) -> int:
    path = KODAK / "kodim23.png"
    if not path.is_file():
        pytest.skip(f"{path} not present (shared Kodak data set)")
    image = Image.open(path).convert("RGB")
    width, height = image.size
    side = min(width, height)
    box = ((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2)
    pixels = np.asarray(image.crop(box).resize((resolution, resolution), Image.BICUBIC), dtype=np.float32)
    x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1
    with torch.no_grad():
        return int(network(EfficientNetLite0.normalize(x)).argmax())


def test_imagenet_weights_classify_the_kodak_parrots_as_a_macaw(backbone):
    assert _classify_kodak_parrots(backbone, 224) == 88  # ImageNet class 88: macaw


@pytest.mark.parametrize("variant", [1, 2])
def test_lite1_and_lite2_load_their_imagenet_weights_and_see_the_macaw_too(variant):
    """The second deep distance's backbones (ENL1-dist, ENL2-dist): the stage tables fit the weight files
    (loading is strict) and the classifier works. Their top-1 on ../shared's ImageNet sample is in the README."""
    try:
        network = load_efficientnet_lite(variant)
    except ModelError as e:
        pytest.skip(f"EfficientNet-Lite{variant} ImageNet weights unavailable: {e}")
    assert network.head.conv.in_channels == VARIANTS[variant][0][-1][5]
    assert _classify_kodak_parrots(network, VARIANTS[variant][1]) == 88


def test_distance_is_zero_for_identical_images_and_per_image(backbone):
    metric = EfficientNetDistance(backbone)
    x = torch.rand(3, 3, 64, 80, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = x.clone()
    y[1] += 0.2 * torch.randn(3, 64, 80, generator=torch.Generator().manual_seed(1))
    d = metric(x, y)
    assert d.shape == (3,)
    assert float(d[0]) == 0.0 and float(d[2]) == 0.0 and 0 < float(d[1]) < 4


def test_distance_is_differentiable_and_the_backbone_stays_frozen(backbone):
    metric = EfficientNetDistance(backbone).train()
    assert not metric.backbone.training  # batch-norm statistics never move
    x = torch.zeros(2, 3, 48, 48, requires_grad=True)
    target = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(2)) * 2 - 1
    metric(x, target).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in metric.parameters())


def _test_image() -> np.ndarray:
    path = KODAK / "kodim23.png"
    if path.is_file():
        return np.asarray(Image.open(path).convert("RGB"))[160:352, 280:472]
    # no Kodak: a synthetic image with smooth shading, edges and fine texture
    yy, xx = np.mgrid[0:192, 0:192].astype(np.float32)
    rng = np.random.default_rng(0)
    base = np.stack([xx, yy, 192 - xx], axis=-1) * 1.2 + 40 * ((xx // 24 + yy // 24) % 2)[..., None]
    return np.clip(base + 25 * rng.standard_normal((192, 192, 3)), 0, 255).astype(np.uint8)


def test_distance_ranks_jpeg_qualities_monotonically(backbone):
    metric = EfficientNetDistance(backbone)
    original = _test_image()

    def as_input(pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float().unsqueeze(0) / 127.5 - 1

    distances = []
    for quality in (5, 15, 30, 60, 90):
        buffer = io.BytesIO()
        Image.fromarray(original).save(buffer, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(buffer).convert("RGB"))
        with torch.no_grad():
            distances.append(float(metric(as_input(original), as_input(decoded))[0]))
    assert distances == sorted(distances, reverse=True) and len(set(distances)) == len(distances), distances


def test_pooled_patch_features(backbone):
    patches = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    features = EfficientNetPooledFeatures(backbone)(patches)
    assert features.shape == (3, 1280) and features.dtype == torch.float64
    assert bool((features >= 0).all() and (features <= 6).all())  # pooled ReLU6 activations


def test_missing_weights_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_efficientnet_lite0(tmp_path / "absent.pth")
