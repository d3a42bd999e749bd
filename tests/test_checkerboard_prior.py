"""The checkerboard + channel-slice context prior: the entropy-model contract at a tiny size, OSDiff's
module names and shapes at the full size, the anchor pattern, odd sizes and the z-only prediction."""

from __future__ import annotations

import pytest
import torch
from entropy_testing import EntropyModelContract

from onestep.codecs.checkerboard_prior import OSDIFF_SLICES, CheckerboardChannelPrior, anchor_mask
from onestep.errors import StreamError

HYPER = 6
SLICES = (2, 2, 4)


def tiny_prior(scale: float = 1.5) -> CheckerboardChannelPrior:
    """Random weights, except that the last layer of every parameter network starts near (scale, mean 0),
    so that y ~ N(0, scale) is what the model expects."""
    prior = CheckerboardChannelPrior(HYPER, SLICES, context_widths=(12, 8))
    with torch.no_grad():
        for nets in (prior.entropy_parameters_anchor, prior.entropy_parameters_nonanchor):
            for net, width in zip(nets, SLICES):
                last = net.fusion[-1]
                last.weight.mul_(0.05)
                last.bias.zero_()
                last.bias[:width] = scale
    return prior


def feature_and_y(seed: int, height: int = 10, width: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, HYPER, height, width, generator=g), torch.randn(2, sum(SLICES), height, width, generator=g)


class TestCheckerboardChannelPrior(EntropyModelContract):
    def make_model(self) -> CheckerboardChannelPrior:
        return tiny_prior()

    def make_inputs(self, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feature, y = feature_and_y(seed)
        return y * 1.5, {"feature": feature}


def test_anchors_are_osdiff_s_checkerboard() -> None:
    mask = anchor_mask(5, 6)
    expected = torch.zeros(5, 6, dtype=torch.bool)
    expected[0::2, 1::2] = True  # OSDiff utils/ckbd.py: ckbd_anchor
    expected[1::2, 0::2] = True
    assert torch.equal(mask, expected)


def test_osdiff_module_names_and_shapes() -> None:
    """LFGCM(M=320) of OSDiff's released code: hyper params of 2M channels, ten slices."""
    with torch.device("meta"):
        prior = CheckerboardChannelPrior(640)
    shapes = {k: tuple(v.shape) for k, v in prior.state_dict().items()}
    expected: dict[str, tuple[int, ...]] = {}
    for i, s in enumerate(OSDIFF_SLICES):
        expected[f"local_context.{i}.weight"] = (2 * s, s, 5, 5)
        expected[f"local_context.{i}.bias"] = (2 * s,)
        if i:
            for j, (cin, cout) in enumerate([(sum(OSDIFF_SLICES[:i]), 224), (224, 128), (128, 2 * s)]):
                expected[f"channel_context.{i}.fushion.{2 * j}.weight"] = (cout, cin, 5, 5)
                expected[f"channel_context.{i}.fushion.{2 * j}.bias"] = (cout,)
        for name, extra in (("anchor", 2 * s if i else 0), ("nonanchor", 4 * s if i else 2 * s)):
            widths = [640 + extra, 2 * s * 5 // 3, 2 * s * 4 // 3, 2 * s]
            for j in range(3):
                expected[f"entropy_parameters_{name}.{i}.fusion.{2 * j}.weight"] = (widths[j + 1], widths[j], 1, 1)
                expected[f"entropy_parameters_{name}.{i}.fusion.{2 * j}.bias"] = (widths[j + 1],)
    assert shapes == expected
    assert prior.channels == 320


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (7, 4)])
def test_odd_and_tiny_sizes_round_trip(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    prior = tiny_prior().eval()
    feature, y = feature_and_y(7, *size)
    data, sent = prior.compress(y, feature=feature)
    assert torch.equal(prior.decompress(data, tuple(y.shape), feature=feature), sent)


def test_prediction_is_what_a_stream_of_zero_residuals_decodes_to() -> None:
    torch.manual_seed(0)
    prior = tiny_prior().eval()
    feature, _ = feature_and_y(8)
    predicted = prior.predict(feature)
    assert predicted.shape == (2, sum(SLICES), 10, 12) and torch.isfinite(predicted).all()
    data, sent = prior.compress(predicted, feature=feature)
    assert torch.equal(sent, predicted)
    assert torch.equal(prior.decompress(data, tuple(predicted.shape), feature=feature), predicted)


def test_a_stream_decoded_with_another_feature_fails_or_differs() -> None:
    torch.manual_seed(0)
    prior = tiny_prior().eval()
    feature, y = feature_and_y(9)
    data, sent = prior.compress(y, feature=feature)
    try:
        other = prior.decompress(data, tuple(y.shape), feature=feature + 1)
    except StreamError:
        return
    assert not torch.equal(other, sent)


def test_bad_shapes_and_parameters() -> None:
    prior = tiny_prior()
    feature, y = feature_and_y(10)
    with pytest.raises(ValueError):
        prior.compress(y[:, :5], feature=feature)
    with pytest.raises(ValueError):
        prior.compress(y, feature=feature[:, :4])
    with pytest.raises(TypeError):
        prior.compress(y, scales=feature)
