"""FSQ: the reference's index <-> code mapping (digest section 4), worked by hand, and its gradients."""

import math

import pytest
import torch

from onestep.entropy import FSQ

HALF_L = 3 * (1 + 1e-3) / 2  # 1.5015
SHIFT = math.atanh(0.5 / HALF_L)


def z_for_bounded(value: float) -> float:
    """The input whose bounded value tanh(z + shift) * half_l - 0.5 equals `value`."""
    return math.atanh((value + 0.5) / HALF_L) - SHIFT


def one_pixel(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)


def test_sizes_and_no_state():
    fsq = FSQ([4] * 7)
    assert (fsq.codebook_size, fsq.bits_per_index, fsq.dim) == (16384, 14, 7)
    assert list(fsq.parameters()) == [] and list(fsq.state_dict()) == []
    assert FSQ([8, 5, 5, 5]).bits_per_index == 10  # 1000 codes


def test_hand_worked_levels_and_codes():
    """z = 0 sits on level 2 (code 0); bounded values -2, -1, 0, 1 are levels 0..3, codes -1..0.5."""
    fsq = FSQ([4] * 7)
    assert z_for_bounded(0.0) == pytest.approx(0.0, abs=1e-12)  # the shift centres z = 0 on a level
    z = one_pixel([0.0, z_for_bounded(-1.0), z_for_bounded(1.0), 10.0, -10.0, z_for_bounded(-0.45), 0.3])
    codes, idx = fsq(z)
    # bounded(0.3) = tanh(0.3 + shift) * 1.5015 - 0.5 = 0.355 -> level 2
    assert codes.flatten().tolist() == [0.0, -0.5, 0.5, 0.5, -1.0, 0.0, 0.0]
    levels = [2, 1, 3, 3, 0, 2, 2]
    assert idx.item() == sum(level * 4**i for i, level in enumerate(levels))  # channel 0 least significant
    assert idx.item() == 2 + 1 * 4 + 3 * 16 + 3 * 64 + 0 * 256 + 2 * 1024 + 2 * 4096 == 10486


def test_index_digits_and_extremes():
    fsq = FSQ([4] * 7)
    codes = fsq.indices_to_codes(torch.tensor([[[0, 1, 4, 16383]]]))
    assert codes.shape == (1, 7, 1, 4) and codes.dtype == torch.float32
    assert codes[0, :, 0, 0].tolist() == [-1.0] * 7
    assert codes[0, :, 0, 1].tolist() == [-0.5] + [-1.0] * 6
    assert codes[0, :, 0, 2].tolist() == [-1.0, -0.5] + [-1.0] * 5
    assert codes[0, :, 0, 3].tolist() == [0.5] * 7


def test_round_trip_through_indices():
    fsq = FSQ([4] * 7)
    z = torch.randn(2, 7, 5, 6, generator=torch.Generator().manual_seed(0)) * 2
    codes, idx = fsq(z)
    assert idx.shape == (2, 5, 6) and idx.dtype == torch.int64
    assert 0 <= idx.min() and idx.max() < 16384
    assert torch.equal(fsq.indices_to_codes(idx), codes)
    assert set(codes.unique().tolist()) <= {-1.0, -0.5, 0.0, 0.5}


def test_odd_and_mixed_levels():
    """Odd L has no offset: codes (l - L//2) / (L//2); every index decodes and re-encodes to itself."""
    fsq = FSQ([5, 3, 2])
    codes = fsq.indices_to_codes(torch.arange(30).view(1, 1, 30))
    assert sorted(set(codes[0, 0].flatten().tolist())) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert sorted(set(codes[0, 1].flatten().tolist())) == [-1.0, 0.0, 1.0]
    assert sorted(set(codes[0, 2].flatten().tolist())) == [-1.0, 0.0]
    assert codes[0, :, 0, 7].tolist() == [0.0, 0.0, -1.0]  # 7 = 2 + 1 * 5: levels (2, 1, 0)
    z = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 3
    z_hat, idx = fsq(z)
    assert torch.equal(fsq.indices_to_codes(idx), z_hat) and idx.max() < 30


def test_straight_through_gradient():
    fsq = FSQ([4] * 7)
    z = torch.randn(1, 7, 3, 3, dtype=torch.float32, requires_grad=True)
    codes, _ = fsq(z)
    codes.sum().backward()
    t = torch.tanh(z.detach() + SHIFT)
    assert torch.allclose(z.grad, (1 - t**2) * HALF_L / 2, atol=1e-6)


def test_float32_under_autocast():
    fsq = FSQ([4] * 7)
    z = torch.randn(1, 7, 4, 4, generator=torch.Generator().manual_seed(1)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes, idx = fsq(z)
    ref_codes, ref_idx = fsq(z.float())
    assert codes.dtype == torch.bfloat16 and torch.equal(codes.float(), ref_codes) and torch.equal(idx, ref_idx)


def test_bad_input():
    with pytest.raises(ValueError):
        FSQ([4, 1])
    with pytest.raises(ValueError):
        FSQ([4] * 7)(torch.zeros(1, 6, 2, 2))
