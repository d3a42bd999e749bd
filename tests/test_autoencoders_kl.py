"""KLAutoencoder: mode vs sample encoding, loading diffusers weights, clear errors."""

from pathlib import Path

import pytest
import torch
from autoencoder_testing import AutoencoderContract
from diffusers import AutoencoderKL
from safetensors.torch import save_file

from onestep.autoencoders.kl import KLAutoencoder
from onestep.errors import ConfigError, ModelError

TINY = dict(block_out_channels=(16, 16, 32, 32), layers_per_block=1, norm_num_groups=8)


def _diffusers_vae() -> AutoencoderKL:
    torch.manual_seed(1)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, **TINY
    ).eval()


def _image() -> torch.Tensor:
    torch.manual_seed(2)
    return torch.rand(1, 3, 64, 48) * 2 - 1


def _assert_same_as_diffusers(model: KLAutoencoder, vae: AutoencoderKL) -> None:
    x = _image()
    with torch.no_grad():
        expected = vae.encode(x).latent_dist.mode() * 0.18215
        latent = model.encode(x)
        assert (latent - expected).abs().max() < 1e-5
        assert (model.decode(latent) - vae.decode(latent / 0.18215).sample).abs().max() < 1e-5


def test_shapes_and_interface() -> None:
    model = KLAutoencoder.tiny().eval()
    assert model.downsampling == 8 and model.latent_channels == 4
    with torch.no_grad():
        latent = model.encode(_image())
        assert latent.shape == (1, 4, 8, 6)
        assert model.decode(latent).shape == (1, 3, 64, 48)
    assert all(k.startswith("vae.") for k in model.state_dict())
    assert "vae.encoder.mid_block.attentions.0.group_norm.weight" in model.state_dict()


def test_mode_is_deterministic_and_sample_follows_the_posterior() -> None:
    torch.manual_seed(0)
    model = KLAutoencoder.tiny().eval()
    x = _image()
    with torch.no_grad():
        posterior = model.vae.encode(x).latent_dist
        mode = model.encode(x)
        assert torch.equal(mode, model.encode(x))
        assert torch.allclose(mode, posterior.mean * 0.18215, atol=1e-6)

        sampling = KLAutoencoder.tiny(sample_posterior=True, sample_seed=7).eval()
        sampling.load_state_dict(model.state_dict())
        noise = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(7))
        expected = (posterior.mean + posterior.std * noise) * 0.18215
        sample = sampling.encode(x)
        assert torch.allclose(sample, expected, atol=1e-5)
        assert torch.equal(sample, sampling.encode(x))  # seeded: reproducible
        assert (sample - mode).abs().max() > 1e-4
        other = sampling.encode(x, generator=torch.Generator().manual_seed(8))
        assert (other - sample).abs().max() > 1e-4

        sampling.sample_seed = None  # torch's global RNG: differs between calls
        assert (sampling.encode(x) - sampling.encode(x)).abs().max() > 1e-4


def test_load_from_diffusers_folder(tmp_path: Path) -> None:
    vae = _diffusers_vae()
    vae.save_pretrained(tmp_path / "vae")
    model = KLAutoencoder.from_diffusers(tmp_path / "vae", attention_window=None)
    assert model.config["block_out_channels"] == [16, 16, 32, 32]
    _assert_same_as_diffusers(model, vae)


def test_load_from_single_safetensors_file(tmp_path: Path) -> None:
    vae = _diffusers_vae()
    save_file({k: v.half() for k, v in vae.state_dict().items()}, tmp_path / "vae.safetensors")
    model = KLAutoencoder.from_diffusers(tmp_path / "vae.safetensors", attention_window=None, **TINY)
    assert next(model.parameters()).dtype == torch.float32
    vae.load_state_dict({k: v.half().float() for k, v in vae.state_dict().items()})  # same fp16 rounding
    _assert_same_as_diffusers(model, vae)


def test_load_deprecated_attention_names(tmp_path: Path) -> None:
    vae = _diffusers_vae()
    old_names = {"to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."}
    state = {}
    for key, value in vae.state_dict().items():
        for new, old in old_names.items():
            key = key.replace(f"attentions.0.{new}", f"attentions.0.{old}")
        state[key] = value
    assert any(".query." in k for k in state)
    save_file(state, tmp_path / "old.safetensors")
    _assert_same_as_diffusers(
        KLAutoencoder.from_diffusers(tmp_path / "old.safetensors", attention_window=None, **TINY), vae
    )


def test_save_and_load_pretrained_keeps_the_window(tmp_path: Path) -> None:
    model = KLAutoencoder.tiny(attention_window=4).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = KLAutoencoder.from_pretrained(tmp_path / "m")
    assert loaded.attention_window == 4
    x = _image()
    with torch.no_grad():
        assert torch.equal(model.encode(x), loaded.encode(x))


def test_missing_files_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        KLAutoencoder.from_diffusers(tmp_path / "nowhere")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelError, match="config.json is missing"):
        KLAutoencoder.from_diffusers(tmp_path / "folder")
    _diffusers_vae().save_config(tmp_path / "folder")
    with pytest.raises(ModelError, match="diffusion_pytorch_model.safetensors is missing"):
        KLAutoencoder.from_diffusers(tmp_path / "folder")


def test_damaged_file_raises_model_error(tmp_path: Path) -> None:
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot read"):
        KLAutoencoder.from_diffusers(tmp_path / "bad.safetensors", **TINY)


def test_wrong_keys_and_shapes_raise_model_error(tmp_path: Path) -> None:
    state = _diffusers_vae().state_dict()
    extra = {**state, "encoder.extra.weight": torch.zeros(1)}
    save_file(extra, tmp_path / "extra.safetensors")
    with pytest.raises(ModelError, match="1 unexpected"):
        KLAutoencoder.from_diffusers(tmp_path / "extra.safetensors", **TINY)

    missing = {k: v for k, v in state.items() if k != "decoder.conv_out.bias"}
    save_file(missing, tmp_path / "missing.safetensors")
    with pytest.raises(ModelError, match="1 missing"):
        KLAutoencoder.from_diffusers(tmp_path / "missing.safetensors", **TINY)

    wrong = {**state, "decoder.conv_out.bias": torch.zeros(4)}
    save_file(wrong, tmp_path / "wrong.safetensors")
    with pytest.raises(ModelError, match="wrong shapes"):
        KLAutoencoder.from_diffusers(tmp_path / "wrong.safetensors", **TINY)


def test_unsupported_diffusers_config_raises_model_error(tmp_path: Path) -> None:
    vae = _diffusers_vae()
    vae.register_to_config(latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    vae.save_pretrained(tmp_path / "vae")
    with pytest.raises(ModelError, match="latents_mean"):
        KLAutoencoder.from_diffusers(tmp_path / "vae")


def test_bad_window_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="attention_window"):
        KLAutoencoder.tiny(attention_window=0)


class TestKLAutoencoderContract(AutoencoderContract):
    def make_autoencoder(self) -> KLAutoencoder:
        return KLAutoencoder.tiny()


def test_kl_encoder_fingerprint_covers_the_encoding_settings() -> None:
    """Scaling and posterior sampling change the latents without changing a weight."""
    torch.manual_seed(0)
    model = KLAutoencoder.tiny()
    state = model.state_dict()
    fingerprints = {model.encoder_fingerprint()}
    for change in ({"scaling_factor": 0.5}, {"sample_posterior": True}, {"attention_window": 8}):
        other = KLAutoencoder.tiny(**change)
        other.load_state_dict(state)
        fingerprints.add(other.encoder_fingerprint())
    assert len(fingerprints) == 4


def test_in_place_silu_at_inference_changes_no_value_and_keeps_gradients() -> None:
    from torch import nn

    torch.manual_seed(0)
    model = KLAutoencoder.tiny().eval()
    latent = torch.randn(1, 4, 6, 5)
    with torch.no_grad():
        in_place = model.decode(latent)
    stock = KLAutoencoder.tiny().eval()
    stock.load_state_dict(model.state_dict())
    for module in stock.vae.decoder.modules():
        for name, child in module.named_children():
            if type(child).__name__ == "SiLUInPlaceAtInference":
                setattr(module, name, nn.SiLU())
    with torch.no_grad():
        assert torch.equal(stock.decode(latent), in_place)
    wanted = latent.clone().requires_grad_(True)
    model.decode(wanted).square().mean().backward()  # with gradients recorded it is the stock SiLU
    assert wanted.grad is not None and torch.isfinite(wanted.grad).all()
