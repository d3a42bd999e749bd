"""The OneDC pipeline: full-size layout against the reference key lists, and tiny real-file round trips."""

import ast
from pathlib import Path

import pytest
import torch

from onestep import api
from onestep.images import read_image, write_png
from onestep.methods.onedc.codec_keys import our_key_to_reference
from onestep.methods.onedc.model import onedc_full, onedc_tiny
from onestep.methods.onedc.unet_keys import official_unet_key
from onestep.methods.pipeline import deterministic, pad_image, to_uint8

REFERENCE = Path(__file__).resolve().parents[1] / "../shared/reference"


def _reference_shapes(name: str) -> dict[str, tuple[int, ...]]:
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"reference key list {path} not found (needs ../shared/reference)")
    shapes = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split(" ", 1)
            shapes[key] = tuple(ast.literal_eval(shape))
    return shapes


@pytest.mark.parametrize(
    "part, mapping, file, count",
    [
        ("generator", official_unet_key, "onedc-keys-unet.txt", 1252),
        ("codec", our_key_to_reference, "onedc-keys-codec.txt", 779),
    ],
)
def test_full_size_state_dicts_match_the_reference(part, mapping, file, count):
    reference = _reference_shapes(file)
    with torch.device("meta"):
        model = onedc_full()
    ours = {mapping(k): tuple(v.shape) for k, v in getattr(model, part).state_dict().items()}
    assert len(reference) == count
    assert sorted(set(reference) - set(ours)) == []
    assert sorted(set(ours) - set(reference)) == []
    assert {k: (s, reference[k]) for k, s in ours.items() if reference[k] != s} == {}


def test_full_size_parameter_counts():
    with torch.device("meta"):
        model = onedc_full()
    # digest §13: SD 2.1 VAE, IntraNoAR codec, UNet as stored (SD1.5 + LoRA r64 + conv_in + vae_reduction)
    assert model.autoencoder.num_parameters() == 83_653_863
    assert model.codec.num_parameters() == 394_147_783
    assert model.generator.num_parameters() == 928_619_276
    assert model.pad_multiple == 64


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    model = onedc_tiny().eval()
    assert model.num_parameters() < 5_000_000
    folder = model.save_pretrained(tmp_path_factory.mktemp("model") / "onedc-tiny")
    return api.load_model(folder)  # what a user gets: loaded from a folder, classes found by name


@pytest.mark.parametrize("mode", ["normal", "z-only", "reference-rans"])
def test_odd_size_round_trip_through_files(tiny_model, tmp_path, mode):
    gen = torch.Generator().manual_seed(3)
    image = (torch.rand(3, 125, 187, generator=gen) * 255).to(torch.uint8)
    write_png(tmp_path / "in.png", image)
    info = api.compress_file(tiny_model, tmp_path / "in.png", tmp_path / "a.osc", mode=mode)
    assert (info["width"], info["height"], info["mode"]) == (187, 125, mode)
    # z: 2 x 3 positions at /64 of the padded 128 x 192, 14 bits each -> 11 bytes; y only in normal mode.
    assert info["sections"]["z"] == 11
    assert ("y" in info["sections"]) == (mode != "z-only")
    api.decompress_file(tiny_model, tmp_path / "a.osc", tmp_path / "out.png")
    decoded = read_image(tmp_path / "out.png")
    assert decoded.shape == (3, 125, 187) and decoded.dtype == torch.uint8
    # The decoder's result is what the encoder side computes from the same quantities.
    with torch.no_grad(), deterministic():  # the numerics api.compress/decompress use
        x = pad_image(image[None].float() / 127.5 - 1, tiny_model.pad_multiple, tiny_model.codec.pad_mode(mode))
        _, out = tiny_model.codec.compress_and_reconstruct(x, tiny_model.autoencoder.encode(x), mode=mode)
        expected = to_uint8(tiny_model.autoencoder.decode(tiny_model.generator(out.features, out.context))[0])
    assert torch.equal(decoded, expected[:, :125, :187])


def test_normal_mode_carries_the_image(tiny_model):
    gen = torch.Generator().manual_seed(4)
    a = (torch.rand(3, 64, 64, generator=gen) * 255).to(torch.uint8)
    b = a.flip(-1)
    decode = lambda img: api.decompress(tiny_model, api.compress(tiny_model, img))  # noqa: E731
    assert not torch.equal(decode(a), decode(b))
    assert torch.equal(decode(a), decode(a))
