"""bfloat16 rendering (`set_render_dtype`): the codec stays float32, so the same streams decode (and the same
streams are made), to pixels near float32's; the layers that would show their rounding stay float32; models
whose parts cannot say so refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import run_cli, tiny_pipeline

from onestep.errors import ConfigError
from onestep.methods.onedc.model import onedc_tiny


def test_bfloat16_rendering_decodes_the_same_streams_to_nearby_pixels() -> None:
    torch.manual_seed(0)
    model = onedc_tiny(lora_rank=0).eval()
    image = torch.randint(0, 256, (3, 70, 90), dtype=torch.uint8)
    encoded = model.compress(image)
    fingerprint, float32 = model.fingerprint(), model.decompress(encoded)
    assert model.set_render_dtype(torch.bfloat16) is model
    assert model.fingerprint() == fingerprint  # it still decodes the streams of these weights
    bfloat16 = model.decompress(encoded)
    assert bfloat16.dtype == torch.uint8 and bfloat16.shape == float32.shape
    assert 0 < (bfloat16.int() - float32.int()).abs().max() <= 16  # random tiny weights: loose, but close
    assert model.compress(image).sections == encoded.sections  # the encoder and codec are untouched
    assert torch.equal(model.compress_and_reconstruct(image)[1], bfloat16)
    unet, vae = model.generator.unet, model.autoencoder.vae
    assert unet.down_blocks[0].resnets[0].conv1.weight.dtype == torch.bfloat16
    assert vae.decoder.up_blocks[0].resnets[0].conv1.weight.dtype == torch.bfloat16
    kept = (unet.conv_in, unet.conv_out, vae.decoder.conv_in, vae.decoder.conv_out, vae.encoder.conv_in)
    assert all(layer.weight.dtype == torch.float32 for layer in kept)
    assert model.generator.vae_reduction.short_cut.weight.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.codec.parameters())
    with pytest.raises(ConfigError, match="only float32, or bfloat16 from float32"):
        model.set_render_dtype(torch.float16)


def test_models_that_cannot_render_in_bfloat16_refuse() -> None:
    with pytest.raises(ConfigError, match="cannot render in torch.bfloat16"):
        tiny_pipeline(0).set_render_dtype(torch.bfloat16)


def test_cli_decompress_in_bfloat16(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = onedc_tiny(lora_rank=0).eval().save_pretrained(tmp_path / "model")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    results = run_cli(
        [
            ["compress", tmp_path / "a.png", "-o", tmp_path / "a.osc", "--model", model],
            ["decompress", tmp_path / "a.osc", "-o", tmp_path / "f.png", "--model", model],
            ["decompress", tmp_path / "a.osc", "-o", tmp_path / "b.png", "--model", model, "--dtype", "bfloat16"],
            ["decompress", tmp_path / "a.osc", "-o", tmp_path / "c.png", "--dtype", "bfloat16"],
        ],
        threads=1,
    )
    assert [r.status for r in results[:3]] == [0, 0, 0], [r.stderr for r in results]
    assert results[3].status != 0 and "--dtype bfloat16 needs --model" in results[3].stderr
    f, b = (np.asarray(Image.open(tmp_path / f"{n}.png")).astype(int) for n in "fb")
    assert f.shape == b.shape == (64, 96, 3) and np.abs(f - b).max() <= 16
