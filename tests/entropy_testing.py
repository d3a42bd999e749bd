"""A contract every entropy model's tests reuse (`onestep.entropy.base.EntropyModel`): subclass
`EntropyModelContract` in a `Test...` class and fill in `make_model` and `make_inputs`.

Checked: training-time estimates (shape, finite, gradients), compress -> decompress bit-exact and equal to
what the sender computes and to the eval-mode estimate, estimated bits within `rate_tolerance` of the real
stream's, deterministic streams, a round trip across processes (a fresh interpreter builds the model
from this module's file and decodes the parent's stream, and encodes the same bytes), and bad streams
raising StreamError.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from onestep.entropy.base import EntropyModel
from onestep.errors import StreamError

_CHILD = """
import importlib.util, sys
import numpy as np, torch
torch.set_num_threads(1)
path, name, stream, out = sys.argv[1:5]
spec = importlib.util.spec_from_file_location("contract_child", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
case = getattr(module, name)()
model = case.build_model()
x, params = case.make_inputs(seed=5)
with open(stream, "rb") as f:
    data = f.read()
np.save(out + ".npy", model.decompress(data, tuple(x.shape), **params).numpy())
with open(out + ".bin", "wb") as f:
    f.write(model.compress(x, **params)[0])
"""


class EntropyModelContract:
    rate_tolerance: float = 0.03  # |estimated - real| / real, eval mode

    def make_model(self) -> EntropyModel:
        """A small model; called right after torch.manual_seed(0), so that every process builds the same."""
        raise NotImplementedError

    def make_inputs(self, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x (B x C x H x W, B >= 2) and the model's parameters, deterministic in `seed`; the model should be
        well calibrated for x (the rate check compares the estimate with the real coder's cost)."""
        raise NotImplementedError

    # --- helpers -------------------------------------------------------------------------------------

    def build_model(self) -> EntropyModel:
        torch.manual_seed(0)
        return self.make_model().eval()

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls) -> EntropyModel:
        return cls().build_model()

    # --- the contract --------------------------------------------------------------------------------

    def test_training_estimate_has_gradients(self) -> None:
        model = self.build_model().train()
        x, params = self.make_inputs(seed=1)
        x = x.clone().requires_grad_(True)
        x_hat, bits = model.estimate(x, **params)
        assert x_hat.shape == x.shape and bits.shape == (x.shape[0],)
        assert torch.isfinite(bits).all() and (bits >= 0).all()
        (x_hat.square().mean() + bits.sum() * 1e-3).backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

    def test_round_trip_is_bit_exact(self, model: EntropyModel) -> None:
        x, params = self.make_inputs(seed=2)
        data, sent = model.compress(x, **params)
        assert isinstance(data, bytes) and data
        received = model.decompress(data, tuple(x.shape), **params)
        assert received.shape == x.shape and torch.equal(received, sent)
        with torch.no_grad():
            estimated, _ = model.estimate(x, **params)
        assert torch.equal(estimated, received), "eval-mode estimate and the coder quantize differently"
        assert (received - x).abs().max() < 10, "x_hat should be x quantized"

    def test_estimated_bits_match_the_stream(self, model: EntropyModel) -> None:
        x, params = self.make_inputs(seed=3)
        with torch.no_grad():
            _, bits = model.estimate(x, **params)
        real = 8 * len(model.compress(x, **params)[0])
        estimated = float(bits.sum())
        assert abs(estimated - real) <= self.rate_tolerance * real, f"estimated {estimated:.0f} bits, real {real}"

    def test_streams_are_deterministic(self, model: EntropyModel) -> None:
        x, params = self.make_inputs(seed=4)
        data = model.compress(x, **params)[0]
        assert model.compress(x, **params)[0] == data
        assert self.build_model().compress(x, **params)[0] == data

    def test_round_trip_across_processes(self, model: EntropyModel, tmp_path: Path) -> None:
        x, params = self.make_inputs(seed=5)
        data, sent = model.compress(x, **params)
        (tmp_path / "stream").write_bytes(data)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        test_file = inspect.getfile(type(self))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(test_file).parent), env.get("PYTHONPATH")]))
        out = tmp_path / "child"
        command = [sys.executable, "-c", _CHILD, test_file, type(self).__name__, str(tmp_path / "stream"), str(out)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        assert np.array_equal(np.load(f"{out}.npy"), sent.numpy()), "another process decoded different values"
        assert Path(f"{out}.bin").read_bytes() == data, "another process encoded different bytes"

    def test_bad_streams_raise_stream_error(self, model: EntropyModel) -> None:
        x, params = self.make_inputs(seed=6)
        data, _ = model.compress(x, **params)
        shape = tuple(x.shape)
        for bad in (b"", data[: len(data) // 2], data + data[:8]):
            with pytest.raises(StreamError):
                model.decompress(bad, shape, **params)
        generator = np.random.default_rng(0)
        for _ in range(8):  # a corrupt stream may still decode to something; it must never fail otherwise
            corrupt = bytearray(data)
            corrupt[int(generator.integers(len(data)))] ^= int(generator.integers(1, 256))
            try:
                assert model.decompress(bytes(corrupt), shape, **params).shape == shape
            except StreamError:
                pass
