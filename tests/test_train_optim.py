"""optim.eight_bit: bitsandbytes' 8-bit AdamW when it is installed ("auto") or required ("always")."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from onestep.errors import ConfigError
from onestep.train.engine import adamw_class

HAVE_BITSANDBYTES = importlib.util.find_spec("bitsandbytes") is not None


def test_never_and_bad_values() -> None:
    assert adamw_class("never") is torch.optim.AdamW
    with pytest.raises(ConfigError, match="auto, always or never"):
        adamw_class("sometimes")


@pytest.mark.skipif(HAVE_BITSANDBYTES, reason="bitsandbytes is installed: the fallback cannot be exercised")
def test_without_bitsandbytes_auto_falls_back_and_always_refuses() -> None:
    assert adamw_class("auto") is torch.optim.AdamW
    with pytest.raises(ConfigError, match="bitsandbytes is not installed"):
        adamw_class("always")


@pytest.mark.skipif(not HAVE_BITSANDBYTES, reason="bitsandbytes is not installed")
def test_eight_bit_adamw_steps() -> None:
    import bitsandbytes

    optimizer_class = adamw_class("auto")
    assert optimizer_class is bitsandbytes.optim.AdamW8bit
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 256)  # large enough for the 8-bit state (small tensors stay in 32 bits)
    before = layer.weight.detach().clone()
    optimizer = optimizer_class(layer.parameters(), lr=1e-2)
    layer(torch.randn(8, 256)).square().mean().backward()
    optimizer.step()
    assert not torch.equal(layer.weight, before)
    assert optimizer.state[layer.weight]["state1"].dtype == torch.uint8
