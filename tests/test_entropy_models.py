"""The entropy models as parts: the Gaussian conditional, FSQ and the factorized prior pass the shared
contract; the factorized prior loads CompressAI-named `EntropyBottleneck` weights and matches an
independent computation of its likelihoods and auxiliary loss."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from entropy_testing import EntropyModelContract
from torch import nn

from onestep.entropy import FSQ, FactorizedPrior, GaussianConditional


class TestGaussianConditional(EntropyModelContract):
    def make_model(self) -> GaussianConditional:
        return GaussianConditional()

    def make_inputs(self, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        g = torch.Generator().manual_seed(seed)
        shape = (2, 8, 12, 10)
        scales = torch.exp(torch.empty(shape).uniform_(math.log(0.5), math.log(8.0), generator=g))
        means = torch.empty(shape).uniform_(-4, 4, generator=g)
        x = means + torch.randn(shape, generator=g) * scales
        return x, {"scales": scales, "means": means}


class TestFSQ(EntropyModelContract):
    def make_model(self) -> FSQ:
        return FSQ([4, 4, 3])

    def make_inputs(self, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(seed)), {}


class TestFactorizedPrior(EntropyModelContract):
    def make_model(self) -> FactorizedPrior:
        return FactorizedPrior(6)

    def make_inputs(self, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        g = torch.Generator().manual_seed(seed)
        spread = torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0, 6.0]).view(1, 6, 1, 1)
        return torch.randn(2, 6, 12, 10, generator=g) * spread + 0.3, {}


# --- the factorized prior and CompressAI's EntropyBottleneck -----------------------------------------

FILTERS = (1, 3, 3, 3, 3, 1)
CHANNELS = 5


def compressai_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """What CompressAI 1.2.4 saves for `EntropyBottleneck(5)` after training and `update()`: names, shapes
    and dtypes as its source defines them, values random."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for i in range(len(FILTERS) - 1):
        state[f"_matrix{i}"] = torch.randn(CHANNELS, FILTERS[i + 1], FILTERS[i], generator=g)
        state[f"_bias{i}"] = torch.randn(CHANNELS, FILTERS[i + 1], 1, generator=g)
        if i < len(FILTERS) - 2:
            state[f"_factor{i}"] = torch.randn(CHANNELS, FILTERS[i + 1], 1, generator=g)
    medians = torch.randn(CHANNELS, generator=g)
    spread = torch.rand(CHANNELS, generator=g) * 8 + 1
    state["quantiles"] = torch.stack([medians - spread, medians, medians + spread], dim=1).view(CHANNELS, 1, 3)
    t = math.log(2 / 1e-9 - 1)
    state["target"] = torch.tensor([-t, 0.0, t])
    state["likelihood_lower_bound.bound"] = torch.tensor([1e-9])
    state["_offset"] = torch.full((CHANNELS,), -7, dtype=torch.int32)
    state["_quantized_cdf"] = torch.randint(0, 1 << 16, (CHANNELS, 19), dtype=torch.int32, generator=g)
    state["_cdf_length"] = torch.full((CHANNELS,), 19, dtype=torch.int32)
    return state


def reference_logits(state: dict[str, torch.Tensor], channel: int, x: float) -> float:
    """Ballé's cumulative logits for one channel and one value, written out scalar by scalar in float64."""

    def softplus(v: float) -> float:
        return math.log1p(math.exp(-abs(v))) + max(v, 0.0)

    h = [x]
    for i in range(len(FILTERS) - 1):
        m = state[f"_matrix{i}"][channel].double()
        b = state[f"_bias{i}"][channel, :, 0].double()
        h = [sum(softplus(float(m[j, k])) * h[k] for k in range(len(h))) + float(b[j]) for j in range(m.shape[0])]
        if f"_factor{i}" in state:
            f = state[f"_factor{i}"][channel, :, 0].double()
            h = [v + math.tanh(float(f[j])) * math.tanh(v) for j, v in enumerate(h)]
    return h[0]


def reference_likelihood(state: dict[str, torch.Tensor], channel: int, x: float) -> float:
    def sigmoid(v: float) -> float:
        return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))

    upper, lower = reference_logits(state, channel, x + 0.5), reference_logits(state, channel, x - 0.5)
    return max(sigmoid(upper) - sigmoid(lower), 1e-9)


@pytest.mark.parametrize("prefix", ["", "entropy_bottleneck."])
def test_loads_compressai_entropy_bottleneck_and_matches_its_likelihoods(prefix: str) -> None:
    state = compressai_state_dict()
    holder = nn.Module()
    holder.entropy_bottleneck = FactorizedPrior(CHANNELS)
    target = holder if prefix else holder.entropy_bottleneck
    target.load_state_dict({prefix + k: v for k, v in state.items()}, strict=True)
    prior = holder.entropy_bottleneck.eval()
    x = torch.randn(2, CHANNELS, 3, 4, generator=torch.Generator().manual_seed(1)) * 4
    with torch.no_grad():
        x_hat, likelihood = prior(x)
    medians = state["quantiles"][:, 0, 1]
    assert torch.equal(x_hat, torch.round(x - medians.view(1, -1, 1, 1)) + medians.view(1, -1, 1, 1))
    expected = torch.tensor(
        [[[[reference_likelihood(state, c, float(x_hat[b, c, i, j])) for j in range(4)] for i in range(3)]
          for c in range(CHANNELS)] for b in range(2)],
        dtype=torch.float64,
    )  # fmt: skip
    assert torch.allclose(likelihood.double(), expected, rtol=1e-4, atol=1e-9)
    with torch.no_grad():
        _, bits = prior.estimate(x)
    assert torch.allclose(bits.double(), -torch.log2(expected).flatten(1).sum(1), rtol=1e-4)
    # the auxiliary loss: distance of the quantiles' logits from the targets
    aux = sum(
        abs(reference_logits(state, c, float(state["quantiles"][c, 0, k])) - float(state["target"][k]))
        for c in range(CHANNELS)
        for k in range(3)
    )
    assert math.isclose(prior.aux_loss().item(), aux, rel_tol=1e-4)


def test_loads_the_newer_compressai_parameter_names() -> None:
    state = compressai_state_dict()
    renamed = {}
    for k, v in state.items():
        for old, new in (("_matrix", "matrices."), ("_bias", "biases."), ("_factor", "factors.")):
            if k.startswith(old):
                k = new + k[len(old) :]
        renamed[k] = v
    a, b = FactorizedPrior(CHANNELS), FactorizedPrior(CHANNELS)
    a.load_state_dict(state)
    b.load_state_dict(renamed)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_state_dict_names_and_shapes_are_compressai_s() -> None:
    shapes = {k: tuple(v.shape) for k, v in FactorizedPrior(CHANNELS).state_dict().items()}
    expected = {k: tuple(v.shape) for k, v in compressai_state_dict().items()}
    for coder_state in ("likelihood_lower_bound.bound", "_offset", "_quantized_cdf", "_cdf_length"):
        del expected[coder_state]
    assert shapes == expected


def test_a_different_likelihood_bound_is_refused() -> None:
    state = compressai_state_dict()
    state["likelihood_lower_bound.bound"] = torch.tensor([1e-6])
    with pytest.raises(RuntimeError, match="likelihood_bound"):
        FactorizedPrior(CHANNELS).load_state_dict(state)


def test_aux_loss_moves_only_the_quantiles_towards_the_tails() -> None:
    torch.manual_seed(0)
    prior = FactorizedPrior(3)
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    optimizer = torch.optim.Adam([prior.quantiles], lr=1.0)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = prior.aux_loss()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.9 * losses[0]
    grads = [p.grad for n, p in prior.named_parameters() if n != "quantiles"]
    assert all(g is None for g in grads), "the aux loss must not train the density"
    assert not torch.equal(prior.quantiles, before["quantiles"])


def test_tables_cover_the_quantiles_and_follow_the_weights() -> None:
    prior = FactorizedPrior(CHANNELS)
    prior.load_state_dict(compressai_state_dict())
    tables = prior.coding_tables()
    q = compressai_state_dict()["quantiles"][:, 0].double()
    assert np.array_equal(tables.minima, np.maximum(np.ceil((q[:, 1] - q[:, 0]).numpy()), 0))
    assert np.array_equal(tables.maxima, np.maximum(np.ceil((q[:, 2] - q[:, 1]).numpy()), 0))
    assert all(f.sum() == 1 << 16 and f.min() >= 1 for f in tables.freqs)
    assert all(len(f) == lo + hi + 2 for f, lo, hi in zip(tables.freqs, tables.minima, tables.maxima))
    copied = copy.deepcopy(prior)  # e.g. an EMA copy: the module holds no coder state
    assert copied.coding_tables() is tables
    with torch.no_grad():
        prior.quantiles[:, 0, 2] += 3  # new weights, new tables
    assert prior.coding_tables() is not tables and len(prior.coding_tables().freqs[0]) == len(tables.freqs[0]) + 3


def test_factorized_prior_escapes_values_outside_its_tables() -> None:
    torch.manual_seed(0)
    prior = FactorizedPrior(3).eval()
    tables = prior.coding_tables()
    x = torch.randn(1, 3, 4, 5)
    medians = prior.medians().detach()
    far = [float(medians[0] + tables.maxima[0] + 1), float(medians[1] - tables.minima[1] - 1), 1e6, -(2.0**29)]
    x.view(-1)[: len(far)] = torch.tensor(far)
    data, sent = prior.compress(x)
    assert torch.equal(prior.decompress(data, x.shape), sent)
    assert torch.equal(sent, torch.round(x - medians.view(1, -1, 1, 1)) + medians.view(1, -1, 1, 1))
    with pytest.raises(ValueError):
        prior.compress(torch.full((1, 3, 2, 2), float("nan")))


def test_parameters_are_checked() -> None:
    x = torch.zeros(1, 3, 2, 2)
    gaussian, fsq, factorized = GaussianConditional(), FSQ([4, 4, 4]), FactorizedPrior(3)
    with pytest.raises(TypeError):
        gaussian.compress(x, scales=x)  # means missing
    with pytest.raises(ValueError):
        gaussian.compress(x, scales=x[:, :2], means=x[:, :2])
    for model in (fsq, factorized):
        with pytest.raises(TypeError):
            model.compress(x, scales=x)
        with pytest.raises(ValueError):
            model.compress(torch.zeros(1, 2, 2, 2))
        with pytest.raises(ValueError):
            model.decompress(b"\x01", (1, 2, 2, 2))
