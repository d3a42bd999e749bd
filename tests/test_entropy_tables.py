"""The integer Gaussian tables: structure, determinism, robustness to libm, and the reference's scheme."""

import hashlib
import math

import numpy as np
import pytest
import torch

from onestep.entropy.tables import PRECISION, gaussian_tables, quantize_pmf

# sha256 of our [256, 103] int32 cdf table (float64 build). Changing it changes every stream: bump the
# bitstream format if this has to change.
OUR_TABLE_SHA256 = "6f2b1614bc64843268373660d08c93e973b15d68f8e69014e8a9783ae51157b5"
# The digest's test vector for the reference table (float32 torch build, section 5.8).
REFERENCE_TABLE_SHA256 = "681191522681e23feb2d9a5f05c3bd0c17d225e377aa7e681a6f73e6b35fbf3d"
# sha256 of the reference's float32 centers + pmfs + tails as torch 2.13 computes them on an x86-64 CPU
# with AVX512 (where the test vector above was made); other kernels give other float32 values.
REFERENCE_PMF_SHA256 = "43931271423335684206cdfbf26657fdb08972bf846d76e727c000b16725bd50"


def _reference_pmfs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference's table inputs, computed its way: float32 torch Normal cdfs (digest section 5.8)."""
    scales = torch.exp(torch.linspace(math.log(0.11), math.log(64.0), 256))
    normal = torch.distributions.Normal(torch.zeros(256), scales)
    center = torch.full((256,), 50.0)
    for i in range(50, 1, -1):
        center = torch.where(normal.cdf(torch.full((256,), float(i))) > 0.9999, torch.full((256,), float(i)), center)
    center = center.int()
    samples = (torch.arange(101).int() - center[:, None]).float()
    grid = torch.distributions.Normal(torch.zeros_like(samples), scales[:, None].expand_as(samples))
    lower = grid.cdf(samples - 0.5)
    return center, grid.cdf(samples + 0.5) - lower, 2 * lower[:, :1]


def test_table_structure():
    t = gaussian_tables()
    assert len(t.freqs) == 256 and t.cdf_array().shape == (256, 103)
    for center, f in zip(t.centers, t.freqs):
        assert len(f) == 2 * center + 2  # -c..c plus the escape symbol
        assert f.sum() == 1 << PRECISION and f.min() >= 1
    assert t.centers[0] == 2 and t.centers[-1] == 50 and np.all(np.diff(t.centers) >= 0)
    # the digest's row 0 (scale 0.11): only the zero symbol is likely
    assert t.cdf_array()[0, :8].tolist() == [0, 1, 2, 65533, 65534, 65535, 65536, 0]


def test_table_hash_is_stable():
    assert gaussian_tables() is gaussian_tables()  # built once per process
    rebuilt = gaussian_tables.__wrapped__()
    assert rebuilt.sha256() == gaussian_tables().sha256() == OUR_TABLE_SHA256


@pytest.mark.parametrize("relative_error", [4e-16, -4e-16, 1e-13])
def test_table_survives_last_bit_libm_differences(monkeypatch, relative_error):
    """Another platform's erfc/exp/log may differ in the last bits; the table must not."""
    for name in ("erfc", "exp", "log"):
        exact = getattr(math, name)
        monkeypatch.setattr(math, name, lambda x, f=exact: f(x) * (1 + relative_error))
    assert gaussian_tables.__wrapped__().sha256() == OUR_TABLE_SHA256


def test_quantize_pmf_keeps_every_symbol():
    freqs = quantize_pmf([0.5, 1e-12, 0.5, 0.0])
    assert sum(freqs) == 1 << PRECISION and min(freqs) >= 1
    assert quantize_pmf([0.25] * 4) == [1 << (PRECISION - 2)] * 4
    with pytest.raises(ValueError):
        quantize_pmf([0.0, 0.0])


def test_quantize_pmf_reproduces_the_reference_table():
    """Fed the reference's own float32 pmfs, our quantizer gives the digest's table bit for bit. Our
    float64 table has the same supports and frequencies within one count, except the escape symbol,
    which collects the rounding remainder."""
    center, pmf, tail = _reference_pmfs()
    fingerprint = hashlib.sha256(center.numpy().tobytes() + pmf.numpy().tobytes() + tail.numpy().tobytes())
    if fingerprint.hexdigest() != REFERENCE_PMF_SHA256:
        pytest.skip("this CPU's float32 torch kernels differ from the reference machine's, so its pmfs do")
    table = np.zeros((256, 103), dtype=np.int32)
    for i, c in enumerate(center.tolist()):
        freqs = quantize_pmf(pmf[i, : 2 * c + 1].tolist() + [tail[i, 0].item()])
        table[i, 1 : len(freqs) + 1] = np.cumsum(freqs)
    assert hashlib.sha256(table.tobytes()).hexdigest() == REFERENCE_TABLE_SHA256
    ours = gaussian_tables()
    assert ours.centers.tolist() == center.tolist()
    for i, freqs in enumerate(ours.freqs):
        reference_freqs = np.diff(table[i, : len(freqs) + 1])
        assert np.abs(reference_freqs[:-1] - freqs[:-1]).max() <= 1
