"""Every model shipped in the package loads, and a stream finds the packaged model that made it (name + weights
fingerprint) without --model: files made by a retired default still decode."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_pipeline

from onestep import api
from onestep.errors import StreamError


def test_every_packaged_model_is_found_by_its_streams() -> None:
    packaged = api.packaged_models()
    assert any(name == "onestep-default" for name, _ in packaged)  # the retired v1.1 default stays decodable
    assert sum(name == "onestep-avif-restore" for name, _ in packaged) == 3  # v1.0, v1.1, v1.2: told apart by weights
    image = torch.randint(0, 256, (3, 24, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for (name, fingerprint), folder in packaged.items():
        model = api.load_model(folder)
        assert (model.name, model.fingerprint()) == (name, fingerprint)
        data = api.compress(model, image)
        assert torch.equal(api.decompress(None, data), api.decompress(model, data))


def test_the_default_model_is_packaged() -> None:
    model = api.load_model()
    assert (model.name, model.fingerprint()) in api.packaged_models()


def test_a_stream_of_an_unknown_model_names_what_it_needs() -> None:
    data = api.compress(tiny_pipeline(0), torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(StreamError, match="made by model 'tiny'.*not packaged with onestep: pass its folder"):
        api.decompress(None, data)
