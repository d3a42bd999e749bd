"""LPIPS, DISTS and the FID Inception with random weights in the published file layouts, checked against
computations written here directly from the papers' definitions (plain functional torch / numpy)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from onestep.eval.dists import DISTS
from onestep.eval.inception import FIDInceptionV3, resize_bilinear_tf1
from onestep.eval.lpips import LPIPS
from onestep.eval.metrics import build_suite
from onestep.eval.weights import MissingWeightsError

ALEX_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
VGG_BLOCKS = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]
VGG_WIDTHS = [64, 128, 256, 512, 512]


def random_conv(generator, cout, cin, k):
    weight = torch.randn(cout, cin, k, k, generator=generator) * (2 / (cin * k * k)) ** 0.5
    return weight, 0.1 * torch.randn(cout, generator=generator)


def torchvision_alexnet_state(generator):
    state = {}
    for i, (cout, cin, k) in ALEX_CONVS.items():
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = random_conv(generator, cout, cin, k)
    state["classifier.1.weight"] = torch.zeros(4, 9216)  # present in the published file, unused
    return state


def torchvision_vgg16_state(generator):
    state, cin = {}, 3
    for block, width in zip(VGG_BLOCKS, VGG_WIDTHS):
        for i in block:
            state[f"features.{i}.weight"], state[f"features.{i}.bias"] = random_conv(generator, width, cin, 3)
            cin = width
    state["classifier.0.weight"] = torch.zeros(4, 25088)
    return state


def conv(state, i, x, **kw):
    return F.relu(F.conv2d(x, state[f"features.{i}.weight"], state[f"features.{i}.bias"], **kw))


def alexnet_taps(state, x):
    h1 = conv(state, 0, x, stride=4, padding=2)
    h2 = conv(state, 3, F.max_pool2d(h1, 3, 2), padding=2)
    h3 = conv(state, 6, F.max_pool2d(h2, 3, 2), padding=1)
    h4 = conv(state, 8, h3, padding=1)
    return [h1, h2, h3, h4, conv(state, 10, h4, padding=1)]


def vgg_taps(state, x, pool):
    taps, h = [], x
    for n, block in enumerate(VGG_BLOCKS):
        if n:
            h = pool(h)
        for i in block:
            h = conv(state, i, h, padding=1)
        taps.append(h)
    return taps


def reference_lpips(x, y, backbone_state, heads, net):
    """LPIPS v0.1: scaling layer, unit-normalised features, channel-weighted squared difference,
    spatial mean, sum over layers."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    taps = alexnet_taps if net == "alex" else lambda s, z: vgg_taps(s, z, lambda t: F.max_pool2d(t, 2, 2))
    fx, fy = taps(backbone_state, (x - shift) / scale), taps(backbone_state, (y - shift) / scale)
    total = torch.zeros(x.shape[0])
    for i, (a, b) in enumerate(zip(fx, fy)):
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = heads[f"lin{i}.model.1.weight"].view(1, -1, 1, 1)
        total += ((a - b) ** 2 * w).sum(1).mean((1, 2))
    return total


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_the_definition(tmp_path, net, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    g = torch.Generator().manual_seed(0)
    backbone_state = torchvision_alexnet_state(g) if net == "alex" else torchvision_vgg16_state(g)
    channels = [64, 192, 384, 256, 256] if net == "alex" else VGG_WIDTHS
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for i, c in enumerate(channels)}
    torch.save(backbone_state, tmp_path / ("alexnet-owt-7be5be79.pth" if net == "alex" else "vgg16-397923af.pth"))
    torch.save(heads, tmp_path / f"{net}.pth")
    model = LPIPS.from_published(net, weights_dir=tmp_path)

    x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(2, 3, 64, 64, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        got = model(x, y)
        expected = reference_lpips(x, y, backbone_state, heads, net)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7)
        assert float(got.min()) > 0 and torch.equal(model(x, x), torch.zeros(2))


def reference_l2pool(x):
    hann = torch.tensor([0.5, 1.0, 0.5])
    window = torch.outer(hann, hann) / 4.0  # sums to 1
    weight = window.expand(x.shape[1], 1, 3, 3)
    return (F.conv2d(x**2, weight, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


def reference_dists(x, y, vgg_state, alpha, beta):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    fx = [x, *vgg_taps(vgg_state, (x - mean) / std, reference_l2pool)]
    fy = [y, *vgg_taps(vgg_state, (y - mean) / std, reference_l2pool)]
    widths = [3, *VGG_WIDTHS]
    w_sum = alpha.sum() + beta.sum()
    a_parts, b_parts = torch.split(alpha / w_sum, widths, 1), torch.split(beta / w_sum, widths, 1)
    d1 = d2 = 0
    for a, b, wa, wb in zip(fx, fy, a_parts, b_parts):
        ma, mb = a.mean([2, 3], keepdim=True), b.mean([2, 3], keepdim=True)
        d1 = d1 + (wa * (2 * ma * mb + 1e-6) / (ma**2 + mb**2 + 1e-6)).sum(1, keepdim=True)
        va, vb = ((a - ma) ** 2).mean([2, 3], keepdim=True), ((b - mb) ** 2).mean([2, 3], keepdim=True)
        cov = (a * b).mean([2, 3], keepdim=True) - ma * mb
        d2 = d2 + (wb * (2 * cov + 1e-6) / (va + vb + 1e-6)).sum(1, keepdim=True)
    return 1 - (d1 + d2).flatten()


def test_dists_matches_the_definition(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    g = torch.Generator().manual_seed(1)
    vgg_state = torchvision_vgg16_state(g)
    alpha = 0.1 + 0.01 * torch.rand(1, 1475, 1, 1, generator=g)
    beta = 0.1 + 0.01 * torch.rand(1, 1475, 1, 1, generator=g)
    torch.save(vgg_state, tmp_path / "vgg16-397923af.pth")
    torch.save({"alpha": alpha, "beta": beta}, tmp_path / "DISTS_weights.pt")
    model = DISTS.from_published(weights_dir=tmp_path)

    x = torch.rand(2, 3, 64, 64, generator=g)
    y = (x + 0.2 * torch.randn(2, 3, 64, 64, generator=g)).clamp(0, 1)
    with torch.no_grad():
        got = model(x, y)
        assert torch.allclose(got, reference_dists(x, y, vgg_state, alpha, beta), rtol=1e-5, atol=1e-6)
        assert float(got.min()) > 0 and torch.allclose(model(x, x), torch.zeros(2), atol=1e-6)


def test_tf1_bilinear_resize_matches_an_explicit_loop():
    # TF 1.x resize_bilinear(align_corners=False): source coordinate = destination * in / out, no half-pixel offset
    x = torch.rand(1, 2, 5, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for size in (3, 9):
        got = resize_bilinear_tf1(x, size)
        expected = np.zeros((1, 2, size, size))
        src = x.numpy()
        for i in range(size):
            fy = i * 5 / size
            y0, y1, wy = int(np.floor(fy)), min(int(np.floor(fy)) + 1, 4), fy - np.floor(fy)
            for j in range(size):
                fx = j * 7 / size
                x0, x1, wx = int(np.floor(fx)), min(int(np.floor(fx)) + 1, 6), fx - np.floor(fx)
                top = src[..., y0, x0] * (1 - wx) + src[..., y0, x1] * wx
                bottom = src[..., y1, x0] * (1 - wx) + src[..., y1, x1] * wx
                expected[..., i, j] = top * (1 - wy) + bottom * wy
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_fid_inception_has_the_published_layout_and_gives_2048_features():
    model = FIDInceptionV3().eval()
    state = model.state_dict()
    # torchvision's Inception-v3 has 27,161,264 parameters; without its auxiliary classifier (3,326,696) and
    # with the TF graph's 1008-way instead of 1000-way classifier (+16,392) that leaves 23,850,960.
    assert sum(p.numel() for p in model.parameters()) == 23_850_960
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert state["fc.weight"].shape == (1008, 2048)
    features = model(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    assert features.shape == (2, 2048) and features.dtype == torch.float64 and bool(torch.isfinite(features).all())


def test_suite_skips_published_metrics_without_weights_and_says_which_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    monkeypatch.delenv("ONESTEP_METRIC_WEIGHTS", raising=False)
    suite = build_suite(["psnr-rgb", "lpips-alex", "dists", "fid", "kid"], weights_dir=tmp_path)
    assert [m.info.key for m in suite.image_metrics] == ["psnr-rgb"] and not suite.distribution_metrics
    assert set(suite.skipped) == {"lpips-alex", "dists", "fid", "kid"}
    assert "alexnet-owt-7be5be79.pth" in suite.skipped["lpips-alex"] and "alex.pth" in suite.skipped["lpips-alex"]
    assert "pt_inception-2015-12-05-6726825d.pth" in suite.skipped["fid"]
    with pytest.raises(MissingWeightsError, match="DISTS"):
        DISTS.from_published(weights_dir=tmp_path)
