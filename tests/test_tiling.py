"""Tiled passes: the blend weights of neighbours sum to one, a local network gives the same output tiled as
untiled (decoders that upsample, encoders that downsample), and a whole pipeline decodes the same pixels with
small tiles as with one tile."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from tiny import tiny_pipeline
from torch import nn

from onestep import api
from onestep.generators.base import Generator
from onestep.methods.pipeline import OneStepPipeline
from onestep.methods.tiling import blend_weights, run_tiled, spans


@pytest.mark.parametrize(("length", "tile", "blend"), [(100, 32, 4), (64, 16, 8), (33, 8, 2), (10, 64, 4)])
def test_spans_cover_once_and_weights_sum_to_one(length: int, tile: int, blend: int) -> None:
    total = torch.zeros(length, dtype=torch.float64)
    found = spans(length, tile, halo=6, blend=blend, multiple=2)
    for span in found:
        assert span.lo <= span.keep_lo <= span.start < span.stop <= span.keep_hi <= span.hi
        assert span.lo % 2 == 0 and (span.hi % 2 == 0 or span.hi == length)
        total[span.keep_lo : span.keep_hi] += blend_weights(span, length, blend)
    assert torch.allclose(total, torch.ones(length, dtype=torch.float64))
    assert found[0].start == 0 and found[-1].stop == length


def _local_net(scale: int | Fraction) -> nn.Module:
    """Three 3x3 convolutions (receptive field radius 3) around a resampling step."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(4, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, 16, 3, padding=1)]
    if scale == 4:
        layers += [nn.Conv2d(16, 16 * 16, 1), nn.PixelShuffle(4)]
    elif scale == Fraction(1, 4):
        layers += [nn.PixelUnshuffle(4), nn.Conv2d(16 * 16, 16, 1)]
    return nn.Sequential(*layers, nn.SiLU(), nn.Conv2d(16, 3, 3, padding=1)).eval()


@pytest.mark.parametrize("scale", [1, 4, Fraction(1, 4)])
def test_local_network_tiled_equals_untiled(scale) -> None:
    net = _local_net(scale)
    x = torch.randn(1, 4, 72, 88)
    with torch.no_grad():
        whole = net(x)
        tiled = run_tiled(net, x, Fraction(scale), tile=24, halo=8, blend=8, multiple=4)
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)


class LocalGenerator(Generator):
    """Codec features -> latent through 3x3 convolutions only (no normalisation over the image)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.SiLU(), nn.Conv2d(32, out_channels, 3, padding=1)
        )

    def forward(self, features: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(features)


def test_pipeline_decodes_the_same_pixels_with_small_tiles() -> None:
    base = tiny_pipeline(0, max_pixels=1 << 20)
    generator = LocalGenerator(base.codec.config["output_channels"], base.autoencoder.latent_channels)
    model = OneStepPipeline(base.autoencoder, base.codec, generator, name="local", decode_tile=64, tile_halo=32)
    model.eval()
    image = torch.randint(0, 256, (3, 150, 230), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    data, on_encoder_side = api.compress_and_reconstruct(model, image)
    one_tile = api.decompress(model, data, decode_tile=4096)
    small_tiles = api.decompress(model, data)  # 64-pixel tiles: 3 x 4 of them
    assert torch.equal(small_tiles, on_encoder_side)
    difference = (one_tile.int() - small_tiles.int()).abs()
    assert difference.max() <= 1
