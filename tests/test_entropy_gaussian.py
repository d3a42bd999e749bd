"""The real Gaussian conditional coder: round trips, determinism, escapes, scale indices, API errors."""

import math

import numpy as np
import pytest
import torch

from onestep.entropy import GaussianConditional
from onestep.entropy.escape import join_escapes, split_escapes
from onestep.entropy.tables import gaussian_tables

INT32 = np.iinfo(np.int32)


@pytest.fixture(scope="module")
def gc() -> GaussianConditional:
    return GaussianConditional()


def encode(gc: GaussianConditional, chunks) -> bytes:
    enc = gc.encoder()
    for sym, idx in chunks:
        enc.add(sym, idx)
    return enc.finish()


def decode(gc: GaussianConditional, data: bytes, index_chunks) -> list[torch.Tensor]:
    dec = gc.decoder(data)
    out = [dec.read(idx) for idx in index_chunks]
    dec.finish()
    return out


def gaussian_chunk(gc, shape, seed, max_index=255):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, max_index + 1, shape, generator=g)
    sym = torch.round(torch.randn(shape, generator=g, dtype=torch.float64) * gc.scale_table[idx].double())
    return sym.to(torch.int32), idx


def assert_round_trip(gc, chunks) -> bytes:
    data = encode(gc, chunks)
    out = decode(gc, data, [idx for _, idx in chunks])
    for (sym, idx), got in zip(chunks, out):
        assert got.dtype == torch.int32 and got.shape == idx.shape
        assert torch.equal(got, torch.as_tensor(sym).to(torch.int32))
    return data


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (1, 32, 4, 6), (2, 3, 17, 9), (0,), (4, 0, 3), ()])
def test_round_trip_shapes(gc, shape):
    assert_round_trip(gc, [gaussian_chunk(gc, shape, seed=len(shape))])


def test_four_chunks_one_stream(gc):
    """The 4 passes of a spatial prior: chunks of different shapes and scales, read back in order."""
    chunks = [gaussian_chunk(gc, (1, 32, 6, 8), seed=k, max_index=60 * (k + 1)) for k in range(4)]
    data = assert_round_trip(gc, chunks)
    single = encode(
        gc, [(torch.cat([s.reshape(-1) for s, _ in chunks]), torch.cat([i.reshape(-1) for _, i in chunks]))]
    )
    assert len(data) <= len(single) + 8  # chunking costs (almost) nothing


def test_every_scale_index_and_its_support_edges(gc):
    """All 256 indices, at and just beyond each table's support (-c..c), plus far escapes."""
    sym, idx = [], []
    for i, c in enumerate(gaussian_tables().centers.tolist()):
        values = [0, c, -c, c + 1, -(c + 1), c + 2, -(c + 2), 1000, -1000]
        sym += values
        idx += [i] * len(values)
    assert_round_trip(gc, [(torch.tensor(sym), torch.tensor(idx))])


@pytest.mark.parametrize("value", [30000, -30000, 1 << 20, -(1 << 20), INT32.max, INT32.min, 51, -51, 1 << 24])
def test_extreme_values_round_trip(gc, value):
    idx = torch.tensor([0, 17, 128, 200, 255, 255])
    sym = torch.full((6,), value, dtype=torch.int64)
    sym[1] = 0  # mixed with ordinary symbols
    assert_round_trip(gc, [(sym, idx)])


def test_many_escapes_round_trip(gc):
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, 256, (5000,), generator=g)
    sym = torch.randint(INT32.min, INT32.max, (5000,), generator=g, dtype=torch.int64)
    assert_round_trip(gc, [(sym, idx)])


def test_escape_code_inverts():
    rng = np.random.default_rng(0)
    raw = np.concatenate([np.arange(300), rng.integers(0, 1 << 32, 1000), [(1 << 32) - 1, (1 << 16) - 1, 1 << 16]])
    for shift in (0, 1, 6, 24):
        s = np.full(raw.shape, shift, dtype=np.int64)
        lengths, pieces = split_escapes(raw.astype(np.int64), s)
        assert lengths.max() <= 32 and pieces.min() >= 0 and pieces.max() < 1 << 16
        assert np.array_equal(join_escapes(lengths, s, pieces), raw)


def test_empty_stream(gc):
    assert encode(gc, []) == b""
    assert encode(gc, [(torch.zeros(0, dtype=torch.int32), torch.zeros(0, dtype=torch.int64))]) == b""
    dec = gc.decoder(b"")
    assert dec.read(torch.zeros(0, 3, dtype=torch.int64)).shape == (0, 3)
    dec.finish()


def test_deterministic_bytes(gc):
    chunks = [gaussian_chunk(gc, (4, 16, 16), seed=11), gaussian_chunk(gc, (4, 16, 16), seed=12)]
    chunks[0][0][0, 0, :3] = torch.tensor([40000, -1 << 20, 77])
    first = encode(gc, chunks)
    assert encode(gc, chunks) == first
    assert encode(GaussianConditional(), chunks) == first  # a fresh module, same tables
    numpy_chunks = [(s.numpy().astype(np.int64), i.numpy().astype(np.uint8)) for s, i in chunks]
    assert encode(gc, numpy_chunks) == first


def test_rate_is_sane(gc):
    """Tiny scales cost almost nothing; the stream is close to the entropy of the quantized Gaussian."""
    idx = torch.zeros(100_000, dtype=torch.int64)
    assert len(encode(gc, [(torch.zeros(100_000, dtype=torch.int32), idx)])) <= 16
    sym, idx = gaussian_chunk(gc, (50_000,), seed=5)
    data = encode(gc, [(sym, idx)])
    tables = gaussian_tables()
    ideal = 0.0
    for i, v in zip(idx.tolist(), sym.tolist()):
        s = tables.scales[i] * math.sqrt(2)
        ideal -= math.log2(0.5 * (math.erfc((abs(v) - 0.5) / s) - math.erfc((abs(v) + 0.5) / s)))
    assert 8 * len(data) == pytest.approx(ideal, rel=0.03)


def test_float_symbols_must_be_whole(gc):
    idx = torch.tensor([3, 4])
    assert_round_trip(gc, [(torch.tensor([2.0, -7.0]), idx)])
    assert_round_trip(gc, [(torch.tensor([300.0, -7.0], dtype=torch.bfloat16), idx)])
    for bad in (torch.tensor([0.5, 1.0]), torch.tensor([float("nan"), 1.0])):
        with pytest.raises(ValueError, match="whole numbers"):
            gc.encoder().add(bad, idx)


def test_bad_arguments(gc):
    enc = gc.encoder()
    with pytest.raises(ValueError, match="shape"):
        enc.add(torch.zeros(3, dtype=torch.int32), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="0..255"):
        enc.add(torch.zeros(2, dtype=torch.int32), torch.tensor([0, 256]))
    with pytest.raises(ValueError, match="0..255"):
        gc.decoder(b"").read(torch.tensor([-1]))
    with pytest.raises(ValueError, match="int32"):
        enc.add(torch.tensor([1 << 31]), torch.tensor([0]))
    with pytest.raises(ValueError, match="integers"):
        enc.add(torch.zeros(1, dtype=torch.int32), torch.zeros(1))


def test_scale_index_formula(gc):
    step = (math.log(64) - math.log(0.11)) / 255
    between = [math.exp(math.log(0.11) + (k + 0.5) * step) for k in range(255)]
    assert gc.scale_index(torch.tensor(between)).tolist() == list(range(255))
    special = torch.tensor([0.11, 64.0, 1e9, float("inf"), 0.0, -3.0, float("nan"), 1e-30])
    assert gc.scale_index(special).tolist() == [0, 255, 255, 255, 0, 0, 0, 0]
    got = gc.scale_index(torch.tensor(between, dtype=torch.bfloat16))
    assert got.dtype == torch.int64 and got.min() >= 0 and got.max() <= 255


def test_scale_table_and_no_state(gc):
    assert gc.scale_table.dtype == torch.float32 and gc.scale_table.shape == (256,)
    assert gc.scale_table[0].item() == pytest.approx(0.11) and gc.scale_table[-1].item() == pytest.approx(64.0)
    assert torch.all(gc.scale_table[1:] > gc.scale_table[:-1])
    assert list(gc.state_dict()) == [] and list(gc.parameters()) == []


def test_other_table_sizes_round_trip():
    small = GaussianConditional(scale_min=0.5, scale_max=8.0, num_scales=16)
    sym, idx = gaussian_chunk(small, (500,), seed=2, max_index=15)
    sym[:2] = torch.tensor([1000, -1000])
    assert_round_trip(small, [(sym, idx)])
    with pytest.raises(ValueError):
        GaussianConditional(scale_min=1.0, scale_max=0.5)


def test_scale_index_matches_the_reference_formula_away_from_bin_edges() -> None:
    gc = GaussianConditional()
    scales = torch.exp(
        torch.empty(100_000).uniform_(math.log(0.01), math.log(200.0), generator=torch.Generator().manual_seed(5))
    )
    formula = ((torch.log(scales.double().clamp_min(1e-5)) - math.log(0.11)) / gc._log_step).clamp(0, 255)
    near_edge = (formula - formula.round()).abs() < 1e-4
    ours = gc.scale_index(scales)
    assert torch.equal(ours[~near_edge], formula.floor().long()[~near_edge])
    assert (ours[near_edge] - formula.floor().long()[near_edge]).abs().max() <= 1
    assert gc.scale_index(torch.tensor([float("nan"), -3.0, 0.0, 1e9])).tolist() == [0, 0, 0, 255]
