"""The AVIF-restoration model: the AVIF base-layer codec (shared codec contract), the restoration generator
(local, so tiled == untiled; conditioned; grey stays grey) and the whole pipeline through real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from codec_testing import LatentCodecContract
from PIL import features

from onestep import api
from onestep.codecs.avif_base import FORMAT_V1, SECTION, AvifBaseCodec
from onestep.codecs.avif_boxes import rebuild
from onestep.errors import ConfigError, ImageError, StreamError
from onestep.generators.restore import RestorationGenerator
from onestep.methods.avif_restore.model import avif_restore_model

pytestmark = pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF support")
LEVELS = ((4, 10), (2, 10), (1, 5), (1, 40))  # few levels: every one is coded in these tests


def smooth_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A 3 x H x W uint8 photo-like image (smooth colour fields plus a little texture)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(height // 16, 2), max(width // 16, 2), generator=g)
    field = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    texture = torch.rand(3, height, width, generator=g) * 0.15
    return ((field * 0.85 + texture).clamp(0, 1) * 255).round().to(torch.uint8)


def tiny_model(seed: int = 0, levels: tuple[tuple[int, int], ...] = LEVELS):
    """A tiny model whose generator is not the identity (its zero-initialised layers get random weights)."""
    torch.manual_seed(seed)
    model = avif_restore_model("tiny", levels=levels, default_quality=1)
    for parameter in model.generator.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    return model.eval()


class TestAvifBaseContract(LatentCodecContract):
    sizes = ((64, 64), (96, 160))
    latent_channels = 3
    latent_downsampling = 1

    def make_codec(self) -> AvifBaseCodec:
        return AvifBaseCodec(levels=LEVELS, default_quality=1)

    def expected_features_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch, 3, height, width)

    def expected_context_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch, 1, len(LEVELS) + 1)

    def test_training_forward_has_gradients(self) -> None:
        """Replaces the contract's gradient check: this codec has no weights; its training-time bits are the
        real sizes of the sections it makes."""
        codec = self.make_codec().train()
        assert not list(codec.parameters())
        image, latent = self.inputs(64, 64, batch=2, seed=1)
        out = codec(image, latent)
        for i in range(2):
            quality = int(out.context[i, 0, :-1].argmax())
            payload = codec.compress(image[i : i + 1], latent, quality=quality)[SECTION]
            assert out.bits[SECTION][i].item() == 8 * len(payload)


def test_every_quality_decodes_and_names_itself() -> None:
    codec = AvifBaseCodec(levels=LEVELS, default_quality=1)
    image = smooth_image(96, 128).float()[None] / 127.5 - 1
    sizes = []
    for quality in codec.qualities:
        sections = codec.compress(image, image, quality=quality)
        assert codec.parse_header(sections[SECTION]) == (quality, False)
        out = codec.decompress(sections, (96, 128))
        assert int(out.context[0, 0, :-1].argmax()) == quality and out.context[0, 0].sum() == 1
        psnr = -10 * torch.log10((0.5 * (out.features - image)).square().mean())
        assert psnr > 15, f"quality {quality}: base layer only {psnr:.1f} dB"
        sizes.append(len(sections[SECTION]))
    assert sizes[-1] > sizes[2] > sizes[0]  # full size at high quality costs more than 1/4 size at low


def test_quality_errors() -> None:
    codec = AvifBaseCodec(levels=LEVELS, default_quality=1)
    image = smooth_image(64, 64).float()[None] / 127.5 - 1
    with pytest.raises(ConfigError):
        codec.compress(image, image, quality=len(LEVELS))
    payload = codec.compress(image, image, quality=0)[SECTION]
    with pytest.raises(StreamError, match="quality"):
        codec.decompress({SECTION: payload[:1] + bytes([len(LEVELS)]) + payload[2:]}, (64, 64))
    with pytest.raises(StreamError):
        codec.decompress({SECTION: payload[:2] + payload[3:]}, (64, 64))  # damaged AVIF
    with pytest.raises(StreamError, match="is 16x16, not 16x32"):  # short form: the sequence header's size
        codec.decompress({SECTION: payload}, (128, 64))  # a base layer of another size
    whole = bytes((FORMAT_V1, 0)) + rebuild(payload[2:], 16, 16)  # whole-file form: the decoded picture's size
    with pytest.raises(StreamError, match="not 1/4 of 64x128"):
        codec.decompress({SECTION: whole}, (128, 64))
    with pytest.raises(ConfigError):
        AvifBaseCodec(levels=((3, 10),))


def test_generator_starts_as_identity_and_uses_its_condition() -> None:
    codec = AvifBaseCodec(levels=LEVELS, default_quality=1)
    generator = RestorationGenerator(codec.condition_channels, width=8, depth=1)
    x = smooth_image(32, 48).float()[None] / 127.5 - 1
    assert torch.equal(generator(x, codec.condition(0, False)), x)
    for parameter in generator.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    assert not torch.allclose(generator(x, codec.condition(0, False)), generator(x, codec.condition(3, False)))


def test_grey_in_grey_out() -> None:
    model = tiny_model()
    grey = smooth_image(64, 96)[:1].expand(3, -1, -1).contiguous()
    for quality in model.qualities:
        encoded, reconstruction = model.compress_and_reconstruct(grey, quality=quality)
        assert model.codec.parse_header(encoded.sections[SECTION]) == (quality, True)
        assert torch.equal(reconstruction[0], reconstruction[1]) and torch.equal(reconstruction[0], reconstruction[2])


def test_tiled_decode_equals_untiled() -> None:
    model = tiny_model()
    image = smooth_image(200, 264, seed=1)
    encoded = model.compress(image, quality=1)
    whole = model.decompress(encoded, decode_tile=4096)
    tiled = model.decompress(encoded, decode_tile=64)  # 4 x 5 tiles, each with the pipeline's halo
    assert (whole.int() - tiled.int()).abs().max() <= 1
    receptive = model.generator.receptive_radius
    assert receptive < model.tile_halo  # why the tiles agree everywhere, not only away from tile borders


def test_round_trip_through_files_at_every_quality(tmp_path: Path) -> None:
    model = tiny_model()
    model.save_pretrained(tmp_path / "model")
    loaded = api.load_model(tmp_path / "model")
    assert loaded.fingerprint() == model.fingerprint()
    image = smooth_image(72, 100, seed=2)  # sides not multiples of 8: the pipeline pads and crops
    for quality in model.qualities:
        data, reconstruction = api.compress_and_reconstruct(model, image, quality=quality)
        stream = tmp_path / f"q{quality}.osc"
        stream.write_bytes(data)
        decoded = api.decompress(loaded, stream.read_bytes())
        assert decoded.shape == (3, 72, 100)
        assert torch.equal(decoded, reconstruction)
        info = api.describe(stream.read_bytes())
        assert info["bytes"] == len(data)
    with pytest.raises(ImageError):
        model.compress(image, quality=-1)


def test_bpp_target_picks_the_largest_quality_that_fits() -> None:
    model = tiny_model()
    image = smooth_image(96, 128, seed=3)
    sizes = [len(api.compress(model, image, quality=q)) for q in model.qualities]
    target = (sizes[1] + sizes[2]) // 2
    data, quality = api.compress_to_size(model, image, target)
    assert quality == max(q for q, s in zip(model.qualities, sizes) if s <= target)
    assert len(data) <= target


@pytest.mark.parametrize("architecture", ["tiny", "full"])
def test_named_architectures_build(architecture: str) -> None:
    model = avif_restore_model(architecture)
    assert model.qualities == tuple(range(len(model.codec.levels)))
    x = np.zeros((1, 3, 16, 16), dtype=np.float32)
    assert model.generator(torch.from_numpy(x), model.codec.condition(0, False)).shape == (1, 3, 16, 16)
    with pytest.raises(ConfigError):
        avif_restore_model("huge")


def test_sharpness_is_an_encoder_setting_only() -> None:
    """The loop filter's sharpness changes the encoder's choices; the decoder reads it from the stream, so a
    codec with any sharpness decodes any stream to the same pixels."""
    array = smooth_image(64, 96, seed=3).permute(1, 2, 0).numpy()
    sharp, plain = (AvifBaseCodec(levels=LEVELS, default_quality=1, sharpness=s) for s in (3, 0))
    payload = sharp.encode_base(array, 2)
    assert payload != plain.encode_base(array, 2)
    assert np.array_equal(sharp.decode_base(payload, (64, 96))[0], plain.decode_base(payload, (64, 96))[0])
    with pytest.raises(ConfigError, match="sharpness"):
        AvifBaseCodec(sharpness=8)
