"""Files of format version 1 (written before the container stored mode names) still read and decode to the
very pixels they decoded to then. The fixtures and the small model that made them are committed in
tests/fixtures/v1 (see make_fixtures.py there)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from onestep import api
from onestep.bitstream import read_container
from onestep.images import read_image

FIXTURES = Path(__file__).parent / "fixtures" / "v1"
STREAMS = sorted(FIXTURES.glob("*.osc"))


def test_there_are_fixtures_of_both_modes() -> None:
    assert {read_container(p.read_bytes())[0].mode for p in STREAMS} == {"normal", "z-only"}


@pytest.fixture(scope="module")
def model():
    return api.load_model(FIXTURES / "model")


@pytest.mark.parametrize("stream", STREAMS, ids=lambda p: p.stem)
def test_version_1_files_decode_to_the_same_pixels(model, stream: Path) -> None:
    header, _ = read_container(stream.read_bytes())
    assert header.version == 1 and not header.grey
    expected = read_image(stream.with_name(f"{stream.stem}.expected.png"))
    assert torch.equal(api.decompress(model, stream.read_bytes()), expected)


def test_the_committed_model_keeps_its_fingerprint(model) -> None:
    """A bare-class-name config (format 1) still loads, and the weights still hash to what the files name."""
    header, _ = read_container(STREAMS[0].read_bytes())
    assert model.fingerprint() == header.fingerprint
