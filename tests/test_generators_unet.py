import pytest
import torch
from generator_testing import GeneratorContract

from onestep.errors import ConfigError
from onestep.generators.lora import LoRALayer
from onestep.generators.schedule import alpha_bar, x0_from_epsilon
from onestep.generators.unet import OneStepUNet
from onestep.methods.onedc.unet_keys import official_unet_key, our_unet_key


def _randomise_lora(model: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, LoRALayer):
            m.lora_B.weight.data = torch.randn(m.lora_B.weight.shape, generator=gen) * 0.05


def _inputs(channels: int = 32, tokens: int = 6, dim: int = 32):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(2, channels, 8, 12, generator=gen), torch.randn(2, tokens, dim, generator=gen)


def test_tiny_forward_is_x0_of_the_unet_output():
    torch.manual_seed(0)
    g = OneStepUNet.tiny().eval()
    assert g.num_parameters() < 1_000_000
    features, context = _inputs()
    latent = g(features, context)
    assert latent.shape == (2, 4, 8, 12) and latent.dtype == torch.float32
    t = torch.full((2,), 999)
    eps = g.unet(features, t, encoder_hidden_states=context).sample
    r = g.vae_reduction(features)
    assert torch.allclose(latent, x0_from_epsilon(r, eps, alpha_bar(999)), atol=1e-5)
    # A different timestep gives a different answer (t really reaches the UNet).
    eps_0 = g.unet(features, torch.zeros(2, dtype=torch.long), encoder_hidden_states=context).sample
    assert (eps - eps_0).abs().max() > 1e-4


def test_merged_model_matches_lora_and_survives_save_load(tmp_path):
    torch.manual_seed(0)
    g = OneStepUNet.tiny().eval()
    _randomise_lora(g)
    features, context = _inputs(tokens=1)
    # float64 so the comparison sees the merge, not float32 summation order amplified 14.6x by the x0 rule.
    g, features, context = g.double(), features.double(), context.double()
    with torch.no_grad():
        unmerged = g(features, context)
        assert g.merge_lora() > 0
        merged = g(features, context)
    assert not g.has_lora and g.config["lora_rank"] == 0
    assert (merged - unmerged).abs().max() < 1e-5
    g, features, context = g.float(), features.float(), context.float()
    loaded = OneStepUNet.from_pretrained(g.save_pretrained(tmp_path / "m"))
    with torch.no_grad():
        assert torch.equal(loaded(features, context), g(features, context))


def test_sodec_style_features_are_x_t():
    torch.manual_seed(0)
    g = OneStepUNet(unet=OneStepUNet.tiny().config["unet"], feature_channels=4, x_t="features", lora_rank=0)
    assert g.vae_reduction is None and g.unet.conv_in.in_channels == 4
    features, context = _inputs(channels=4)
    eps = g.unet(features, torch.full((2,), 999), encoder_hidden_states=context).sample
    assert torch.allclose(g(features, context), x0_from_epsilon(features, eps, alpha_bar(999)), atol=1e-5)


def test_bad_inputs_and_configs():
    g = OneStepUNet.tiny()
    features, _ = _inputs()
    with pytest.raises(ValueError, match="context"):
        g(features, None)
    with pytest.raises(ValueError, match="B x tokens x 32"):
        g(features, torch.zeros(2, 4, 16))
    with pytest.raises(ConfigError):
        OneStepUNet(unet={"in_channels": 4})
    with pytest.raises(ConfigError):
        OneStepUNet(x_t="noise")
    with pytest.raises(ConfigError, match="timestep"):
        OneStepUNet(timestep=1000)
    with pytest.raises(ConfigError):
        OneStepUNet(unet=g.config["unet"], feature_channels=8, x_t="features")


def test_only_conv_in_reduction_and_lora_train():
    g = OneStepUNet.tiny()
    names = [n for n, p in g.named_parameters() if p.requires_grad]
    assert all(n.startswith(("unet.conv_in.", "vae_reduction.")) or ".lora_" in n for n in names)
    assert any(".lora_A." in n for n in names) and "unet.conv_in.weight" in names
    assert "unet.conv_out.weight" not in names


def test_full_size_counts_on_meta():
    with torch.device("meta"):
        g = OneStepUNet()
    assert g.num_parameters() == 928_619_276  # digest §13: SD1.5 + LoRA r64 + new conv_in + vae_reduction
    assert sum(isinstance(m, LoRALayer) for m in g.modules()) == 278
    keys = list(g.state_dict())
    assert len(keys) == 1252 and all(our_unet_key(official_unet_key(k)) == k for k in keys)
    assert sum(p.numel() for p in g.parameters() if p.requires_grad) == 67_252_224 + 921_920 + 936_008
    g.merge_lora()
    assert g.num_parameters() == 861_367_052


class TestOneStepUNetContract(GeneratorContract):
    """With adapters: only conv_in, vae_reduction and the adapters get gradients."""

    context_shape = (6, 32)

    def make_generator(self) -> OneStepUNet:
        return OneStepUNet.tiny()


class TestMergedOneStepUNetContract(TestOneStepUNetContract):
    """Without adapters (the merged inference form): the whole UNet trains when asked to."""

    def make_generator(self) -> OneStepUNet:
        return OneStepUNet.tiny(lora_rank=0)
