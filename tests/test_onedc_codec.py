"""OneDCCodec: the shared latent-codec contract at the tiny config, plus OneDC specifics (reference structure,
key mapping, z-only mode, section errors, estimated vs real bits)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from codec_testing import LatentCodecContract
from safetensors.torch import save_file

from onestep.codecs.spatial_prior import pass_masks
from onestep.errors import ConfigError, ModelError, StreamError
from onestep.methods.onedc.codec import OneDCCodec
from onestep.methods.onedc.codec_keys import (
    from_reference_state_dict,
    load_reference_codec,
    our_key_to_reference,
    reference_key_to_ours,
    to_reference_state_dict,
)

REFERENCE_KEYS = Path(__file__).resolve().parents[1] / "../shared/reference/onedc-keys-codec.txt"
FULL_PARAMETERS = 394_147_783


class TestOneDCContract(LatentCodecContract):
    sizes = ((64, 64), (128, 192))

    def make_codec(self) -> OneDCCodec:
        return OneDCCodec.tiny()

    def expected_features_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch, 32, height // 8, width // 8)

    def expected_context_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch, (height // 64) * (width // 64), 64)


@pytest.fixture(scope="module")
def codec() -> OneDCCodec:
    torch.manual_seed(0)
    return OneDCCodec.tiny().eval()


def inputs(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, height, width, generator=generator) * 2 - 1
    return image, torch.randn(1, 4, height // 8, width // 8, generator=generator)


def read_reference_keys() -> dict[str, tuple[int, ...]]:
    if not REFERENCE_KEYS.is_file():
        pytest.skip(f"reference key list not found at {REFERENCE_KEYS} (needs ../shared)")
    keys = {}
    for line in REFERENCE_KEYS.read_text().splitlines():
        match = re.fullmatch(r"(\S+) \(([\d, ]*)\)", line.strip())
        if match:
            keys[match[1]] = tuple(int(n) for n in match[2].replace(" ", "").split(",") if n)
    return keys


def test_tiny_is_small() -> None:
    assert OneDCCodec.tiny().num_parameters() < 2_000_000


def test_full_config_matches_the_reference_checkpoint_layout() -> None:
    reference = read_reference_keys()
    assert len(reference) == 779
    with torch.device("meta"):
        full = OneDCCodec.full()
    assert full.num_parameters() == FULL_PARAMETERS
    ours = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    mapped = {reference_key_to_ours(k): shape for k, shape in reference.items()}
    assert len(mapped) == len(reference)  # one to one
    assert mapped == ours
    assert {our_key_to_reference(k) for k in ours} == set(reference)


def test_key_mapping_round_trips_and_rejects_unknown_keys() -> None:
    state = {"prior.adaptors.2.block.0.conv2.bias": torch.zeros(1), "encoder.unet.conv_in.3.weight": torch.ones(1)}
    reference = to_reference_state_dict(state)
    assert set(reference) == {"y_spatial_prior_adaptor_3.block.0.conv2.bias", "enc.unet.conv_in.3.weight"}
    assert from_reference_state_dict(reference).keys() == state.keys()
    with pytest.raises(ModelError):
        reference_key_to_ours("codec.something")


def test_load_reference_codec(codec: OneDCCodec, tmp_path: Path) -> None:
    path = tmp_path / "model_1.safetensors"
    save_file({k: v.contiguous() for k, v in to_reference_state_dict(codec.state_dict()).items()}, str(path))
    loaded = load_reference_codec(path, OneDCCodec.tiny())
    assert loaded.fingerprint() == codec.fingerprint() and not loaded.training
    save_file({"enc.pix_emb.weight": torch.zeros(1)}, str(path))
    with pytest.raises(ModelError, match="missing"):
        load_reference_codec(path, OneDCCodec.tiny())
    path.write_bytes(b"not safetensors")
    with pytest.raises(ModelError):
        load_reference_codec(path, OneDCCodec.tiny())


def test_smallest_image_has_one_token_and_two_z_bytes(codec: OneDCCodec) -> None:
    image, latent = inputs(64, 64)
    with torch.no_grad():
        out = codec(image, latent)
    assert out.context.shape == (1, 1, 64)
    assert out.bits["z"].item() == 14
    assert len(codec.compress(image, latent)["z"]) == 2  # ceil(14 / 8)


def test_z_only_sends_z_and_uses_the_predicted_means(codec: OneDCCodec) -> None:
    image, latent = inputs(128, 192, seed=1)
    sections, encoded = codec.compress_and_reconstruct(image, latent, mode="z-only")
    assert set(sections) == {"z"} and len(sections["z"]) == (2 * 3 * 14 + 7) // 8
    normal_sections, normal = codec.compress_and_reconstruct(image, latent, mode="normal")
    assert normal_sections["z"] == sections["z"]
    assert not torch.equal(encoded.extras["y_hat"], normal.extras["y_hat"])
    # Pass 0's means depend on z alone, so there the normal y_hat is the z-only y_hat plus an integer.
    pass0 = pass_masks(16, 8, 12)[0]
    difference = (normal.extras["y_hat"] - encoded.extras["y_hat"])[0][pass0]
    torch.testing.assert_close(difference, difference.round(), rtol=0, atol=1e-4)
    assert difference.abs().sum() > 0
    decoded = codec.decompress(sections, (128, 192), mode="z-only")
    assert torch.equal(decoded.extras["y_hat"], encoded.extras["y_hat"])
    assert torch.equal(decoded.features, encoded.features)


def test_stream_errors(codec: OneDCCodec) -> None:
    image, latent = inputs(128, 192, seed=2)
    sections = codec.compress(image, latent)
    size = (128, 192)
    with pytest.raises(StreamError, match="missing"):
        codec.decompress({"z": sections["z"]}, size)
    with pytest.raises(StreamError, match="unexpected"):
        codec.decompress({**sections, "extra": b""}, size)
    with pytest.raises(StreamError, match="unexpected"):
        codec.decompress(sections, size, mode="z-only")
    with pytest.raises(StreamError):
        codec.decompress({**sections, "z": sections["z"][:-1]}, size)
    with pytest.raises(StreamError):
        codec.decompress({**sections, "z": sections["z"] + b"\0"}, size)
    with pytest.raises(StreamError):
        codec.decompress(sections, (128, 128))  # z has 6 indices, the size wants 4
    with pytest.raises(StreamError):
        codec.decompress(sections, (100, 192))
    for bad_y in (b"", sections["y"][:-1], sections["y"] + b"\0\1"):
        with pytest.raises(StreamError):
            codec.decompress({**sections, "y": bad_y}, size)
    with pytest.raises(ConfigError):
        codec.compress(image, latent, mode="fast")


def test_estimated_bits_are_close_to_the_real_stream(codec: OneDCCodec) -> None:
    """In eval mode forward() rates the rounded residuals the coder writes: its y estimate lands within a
    few percent of the real stream, and z is exactly the fixed index length."""
    image, latent = inputs(128, 192, seed=3)
    with torch.no_grad():
        estimated = codec(image, latent)
    sections, encoded = codec.compress_and_reconstruct(image, latent)
    real_y = 8 * len(sections["y"])
    assert abs(estimated.bits["y"].item() - real_y) / real_y < 0.05
    assert estimated.bits["z"].item() == 6 * 14 and len(sections["z"]) == 11
    torch.testing.assert_close(estimated.extras["y_hat"], encoded.extras["y_hat"], rtol=0, atol=1e-4)
    torch.testing.assert_close(estimated.features, encoded.features)


def test_streams_made_under_autocast_decode_exactly_without_it(codec: OneDCCodec) -> None:
    """The entropy parameters run in float32 whatever the caller's autocast, so y_hat matches bit for bit."""
    image, latent = inputs(128, 192, seed=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sections, encoded = codec.compress_and_reconstruct(image, latent)
        training = codec(image, latent)
    assert training.features.dtype == torch.bfloat16 and torch.isfinite(training.bits["y"]).all()
    decoded = codec.decompress(sections, (128, 192))
    assert torch.equal(decoded.extras["y_hat"], encoded.extras["y_hat"])
