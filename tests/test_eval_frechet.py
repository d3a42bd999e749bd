"""Fréchet distance and KID against computations written independently here (numpy, explicit loops)."""

import numpy as np
import pytest
import torch

from onestep.eval.frechet import frechet_distance, kernel_distance, polynomial_mmd


def numpy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with tr((S1 S2)^1/2) = tr((S1^1/2 S2 S1^1/2)^1/2), via symmetric eigensolvers."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ s2 @ root)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


@pytest.mark.parametrize("n_real, n_fake, dim", [(60, 50, 8), (12, 15, 40)])  # more and fewer samples than dims
def test_frechet_distance_matches_the_textbook_formula(n_real, n_fake, dim):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n_real, dim)) @ rng.normal(size=(dim, dim))
    b = rng.normal(size=(n_fake, dim)) * 2 + 0.5
    expected = numpy_frechet(a, b)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_of_a_set_with_itself_is_zero_and_of_a_shift_is_the_squared_shift():
    a = torch.randn(40, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    shift = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0, 0.0], dtype=torch.float64)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift.square().sum()), abs=1e-9)


def explicit_mmd(x: np.ndarray, y: np.ndarray) -> float:
    m, d = x.shape

    def k(u, v):
        return (u @ v / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_explicit_unbiased_mmd():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(9, 5)), rng.normal(size=(9, 5)) + 0.3
    assert polynomial_mmd(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(explicit_mmd(x, y), rel=1e-10)
    # subsets as large as the sets: every subset is the whole set, so the mean is that value and std 0
    mean, std = kernel_distance(torch.from_numpy(x), torch.from_numpy(y), subsets=4, subset_size=100)
    assert mean == pytest.approx(explicit_mmd(x, y), rel=1e-10) and std == pytest.approx(0.0, abs=1e-12)


def test_kid_of_a_set_with_itself_is_its_closed_form_identity_value():
    # With x = y, the unbiased estimate is 2 / (m (m - 1)) * (S / m - T), S the kernel matrix sum, T its trace.
    x = np.random.default_rng(3).normal(size=(7, 4))
    kernel = (x @ x.T / 4 + 1) ** 3
    m = len(x)
    identity = 2 / (m * (m - 1)) * (kernel.sum() / m - np.trace(kernel))
    assert polynomial_mmd(torch.from_numpy(x), torch.from_numpy(x)) == pytest.approx(identity, rel=1e-10)


def test_kid_random_subsets_are_seeded():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(30, 3, generator=g), torch.randn(30, 3, generator=g)
    assert kernel_distance(a, b, subsets=5, subset_size=10) == kernel_distance(a, b, subsets=5, subset_size=10)
