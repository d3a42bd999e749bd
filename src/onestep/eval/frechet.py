"""Distribution distances between two sets of feature vectors (N x D), in float64.

`frechet_distance` is the FID formula (Heusel et al. 2017); the trace of the matrix square root is
computed through a symmetric problem (see `trace_sqrt_product`). `kernel_distance` is
KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel
(x.y / D + 1)^3, averaged over random subsets.
"""

from __future__ import annotations

import torch


def _as_float64(features: torch.Tensor) -> torch.Tensor:
    features = torch.as_tensor(features).to(torch.float64)
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"need an N x D feature matrix with N >= 2, got shape {tuple(features.shape)}")
    return features


def trace_sqrt_product(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """tr((S_r S_f)^(1/2)) for the sample covariances of two feature sets, computed exactly and fast.

    With centred data A (n_r x D) and B (n_f x D), S_r S_f = A'A B'B / ((n_r - 1)(n_f - 1)); its nonzero
    eigenvalues are the squared singular values of B A', so the trace is their sum (a nuclear norm).
    With more samples than dimensions, the D x D form sqrt(S_r) S_f sqrt(S_r) is smaller; both are
    symmetric eigenproblems, unlike the general eigvals(S_r @ S_f) torchmetrics uses.
    """
    a, b = real - real.mean(0), fake - fake.mean(0)
    scale = ((real.shape[0] - 1) * (fake.shape[0] - 1)) ** 0.5
    if real.shape[0] * fake.shape[0] <= real.shape[1] ** 2:
        return torch.linalg.svdvals(b @ a.T).sum() / scale
    sigma_r, sigma_f = a.T @ a / (real.shape[0] - 1), b.T @ b / (fake.shape[0] - 1)
    values, vectors = torch.linalg.eigh(sigma_r)
    root = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    return torch.linalg.eigvalsh(root @ sigma_f @ root).clamp(min=0).sqrt().sum()


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """||mu_r - mu_f||^2 + tr(S_r) + tr(S_f) - 2 tr((S_r S_f)^(1/2)), sample covariances (N - 1)."""
    real, fake = _as_float64(real), _as_float64(fake)
    mean_term = (real.mean(0) - fake.mean(0)).square().sum()
    traces = real.var(0).sum() + fake.var(0).sum()
    return float(mean_term + traces - 2 * trace_sqrt_product(real, fake))


def polynomial_mmd(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 between two equal-size samples with the kernel (x.y / D + 1)^3."""
    m, dim = x.shape
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / m**2)


def kernel_distance(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID mean and standard deviation over `subsets` random subsets.

    torchmetrics refuses sets smaller than `subset_size` (the reference evaluation then reports -999); here the
    subset size shrinks to the smaller set instead, which the report states.
    """
    real, fake = _as_float64(real), _as_float64(fake)
    size = min(subset_size, real.shape[0], fake.shape[0])
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        r = real[torch.randperm(real.shape[0], generator=generator)[:size]]
        f = fake[torch.randperm(fake.shape[0], generator=generator)[:size]]
        values.append(polynomial_mmd(r, f))
    result = torch.tensor(values, dtype=torch.float64)
    return float(result.mean()), float(result.std()) if subsets > 1 else 0.0
