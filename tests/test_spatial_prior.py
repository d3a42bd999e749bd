"""The 4-pass spatial prior on its own, at a small hyperprior-codec size (32 channels)."""

from __future__ import annotations

import pytest
import torch
from entropy_testing import EntropyModelContract

from onestep.codecs.spatial_prior import (
    NUM_PASSES,
    FourPassPrior,
    gather_pass,
    pass_masks,
    scatter_pass,
)
from onestep.errors import StreamError


@pytest.fixture(scope="module")
def prior() -> FourPassPrior:
    torch.manual_seed(0)
    return FourPassPrior(channels=32, hyper_channels=24).eval()


def test_masks_partition_and_follow_the_reference_patterns() -> None:
    masks = pass_masks(8, 5, 7)
    assert masks.shape == (NUM_PASSES, 8, 5, 7)
    assert (masks.sum(0) == 1).all()  # every element is coded exactly once, odd sides included
    # Digest §5.4: the 2x2 cell position (row-major) each channel group codes, pass by pass.
    reference = [[0, 1, 2, 3], [3, 2, 1, 0], [2, 3, 0, 1], [1, 0, 3, 2]]
    positions = [[int(masks[k, 2 * g, :2, :2].flatten().int().argmax()) for g in range(4)] for k in range(4)]
    assert positions == reference
    assert torch.equal(masks[:, :, 2:4, 4:6], masks[:, :, :2, :2])  # the pattern tiles
    with pytest.raises(ValueError):
        pass_masks(6, 4, 4)


def test_gather_then_scatter_restores_the_coded_elements() -> None:
    values = torch.randn(2, 8, 5, 7)
    for mask in pass_masks(8, 5, 7):
        gathered = gather_pass(values, mask)
        assert gathered.shape == (2, 2, 5, 7)
        assert torch.equal(scatter_pass(gathered)[:, mask], values[:, mask])


@pytest.mark.parametrize("size", [(4, 6), (5, 7)])
def test_compress_decompress_is_bit_exact(prior: FourPassPrior, size: tuple[int, int]) -> None:
    generator = torch.Generator().manual_seed(1)
    feature = torch.randn(1, 24, *size, generator=generator)
    y = 3 * torch.randn(1, 32, *size, generator=generator)
    data, y_hat = prior.compress(y, feature=feature)
    assert torch.equal(prior.decompress(data, y.shape, feature=feature), y_hat)
    assert (y_hat - y).abs().max() <= 0.5 + 1e-5  # rounding of y - mean, nothing more
    with torch.no_grad():
        estimated, _ = prior.estimate(y, feature=feature)
    torch.testing.assert_close(estimated, y_hat, rtol=0, atol=1e-5)  # the training path codes the same y_hat


def test_corrupt_stream_raises(prior: FourPassPrior) -> None:
    feature, y = torch.randn(1, 24, 4, 4), 3 * torch.randn(1, 32, 4, 4)
    data, _ = prior.compress(y, feature=feature)
    for bad in (data[: len(data) // 2], data + b"\x01\x02\x03\x04"):
        with pytest.raises(StreamError):
            prior.decompress(bad, y.shape, feature=feature)


def test_predict_uses_means_only(prior: FourPassPrior) -> None:
    feature = torch.randn(1, 24, 4, 6)
    predicted = prior.predict(feature)
    with torch.no_grad():
        pass0_means = prior.fusion(feature).chunk(2, dim=1)[1]
    mask = pass_masks(32, 4, 6)[0]
    assert torch.equal(predicted[0][mask], pass0_means[0][mask])
    # coding y equal to the prediction costs only zeros and reproduces it
    data, y_hat = prior.compress(predicted, feature=feature)
    assert torch.equal(y_hat, predicted)


def test_estimated_bits_match_the_stream(prior: FourPassPrior) -> None:
    """With a prior that predicts N(0, 2) everywhere and y drawn from it, the rate proxy (rounded residual,
    eval mode) and the real stream agree within a few percent."""
    calibrated = calibrated_prior(noise=0.0).eval()
    generator = torch.Generator().manual_seed(2)
    feature = torch.randn(1, 24, 16, 16, generator=generator)
    y = 2 * torch.randn(1, 32, 16, 16, generator=generator)
    with torch.no_grad():
        _, bits = calibrated.estimate(y, feature=feature)
    data, _ = calibrated.compress(y, feature=feature)
    assert bits.shape == (1,)
    assert abs(bits.item() - 8 * len(data)) / (8 * len(data)) < 0.03
    calibrated.train()
    with torch.no_grad():
        _, noisy_bits = calibrated.estimate(y, feature=feature)
    assert abs(noisy_bits.item() - bits.item()) / bits.item() < 0.1  # the noisy proxy is close, not equal
    assert noisy_bits.item() != bits.item()


def calibrated_prior(noise: float, channels: int = 32, hyper_channels: int = 24) -> FourPassPrior:
    """A prior that predicts about N(0, 2) everywhere: zero weights plus `noise` x N(0, 1), scale biases 2."""
    prior = FourPassPrior(channels=channels, hyper_channels=hyper_channels)
    with torch.no_grad():
        for p in prior.parameters():
            p.copy_(noise * torch.randn_like(p))
        for params_out in (prior.fusion[-1].block[1].conv_out, prior.context[-1].block[1].conv_out):
            params_out.bias[:channels] = 2.0  # scales; means stay about 0
    return prior


class TestFourPassPriorContract(EntropyModelContract):
    def make_model(self) -> FourPassPrior:
        return calibrated_prior(noise=0.02, channels=8, hyper_channels=6)

    def make_inputs(self, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        g = torch.Generator().manual_seed(seed)
        return 2 * torch.randn(2, 8, 12, 10, generator=g), {"feature": torch.randn(2, 6, 12, 10, generator=g)}
