"""OSDiff's architecture: `full` against the reference's keys, shapes and counts; `tiny` end to end; the
controlled UNet, the control module's initialisation, x0, and the latent discriminator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from onestep.generators.schedule import x0_from_epsilon
from onestep.methods.osdiff.codec import SEED_SECTION, latent_noise
from onestep.methods.osdiff.control import OSDiffGenerator
from onestep.methods.osdiff.discriminator import LatentDiscriminator, generator_loss, noised_pair
from onestep.methods.osdiff.keys import codec_key, control_key, discriminator_key
from onestep.methods.osdiff.model import TINY_GENERATOR, discriminator_for, osdiff_full, osdiff_tiny
from onestep.methods.osdiff.sd21 import ldm_alpha_bar

# Written by `reference_harness keys` from the reference's own classes (CDDM, LFGCM, GuidanceModel).
REFERENCE = Path(__file__).parents[1] / "benchmarks" / "osdiff-reference-keys.json"
DEAD = re.compile(r"hyper_enc\.(sft_feature|h_a1\.|h_a4\.|h_a7\.|h_a8\.)|f_c\.")  # built, never called
# CompressAI's coder state: rebuilt from the weights, ours too
CODER_STATE = re.compile(
    r"(entropy_bottleneck\.(_offset|_quantized_cdf|_cdf_length|likelihood)|gaussian_conditional\.)"
)


@pytest.fixture(scope="module")
def full():
    with torch.device("meta"):
        return osdiff_full(), LatentDiscriminator()


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())["parts"]


def _mapped(module: torch.nn.Module, mapping) -> dict[str, list[int]]:
    return {mapping(k): list(v.shape) for k, v in module.state_dict().items()}


def test_full_control_module_is_the_reference_one(full, reference):
    pipeline, _ = full
    theirs = reference["control_model"]
    ours = _mapped(pipeline.generator.control, control_key)
    assert ours == {k: v for k, v in theirs["keys"].items() if k != "scale_list"}  # scale_list: control_scale
    assert sum(p.numel() for p in pipeline.generator.control.parameters()) == theirs["parameters"] == 24_410_240


def test_full_codec_is_the_reference_lfgcm_without_dead_layers(full, reference):
    pipeline, _ = full
    theirs = reference["preprocess_model"]
    live = {k: v for k, v in theirs["keys"].items() if not DEAD.match(k) and not CODER_STATE.match(k)}
    ours = _mapped(pipeline.codec, codec_key)
    assert ours == live
    dead_parameters = sum(torch.Size(v).numel() for k, v in theirs["keys"].items() if DEAD.match(k))
    assert pipeline.codec.num_parameters() + dead_parameters == theirs["parameters"]


def test_full_discriminator_is_the_reference_guidance_model(full, reference):
    _, discriminator = full
    theirs = reference["guidance_model"]
    assert _mapped(discriminator, discriminator_key) == theirs["keys"]
    assert discriminator.num_parameters() == theirs["parameters"]


def test_full_unet_and_vae_map_onto_ldms(full, reference):
    """The ldm -> diffusers maps the importer uses, against ldm's own UNetModel and AutoencoderKL."""
    from onestep.methods.osdiff.importer import _expected_shape, _locate

    pipeline, _ = full
    locate = _locate(pipeline)
    for part, prefix in (("generator.unet.", "model.diffusion_model"), ("autoencoder.vae.", "first_stage_model")):
        ours = {
            locate(k).removeprefix(prefix + "."): list(_expected_shape(k, v))
            for k, v in pipeline.state_dict().items()
            if k.startswith(part)
        }
        assert ours == reference[prefix]["keys"], part
    assert (
        sum(p.numel() for p in pipeline.generator.unet.parameters()) == reference["model.diffusion_model"]["parameters"]
    )
    assert pipeline.autoencoder.num_parameters() == reference["first_stage_model"]["parameters"]


def test_full_base_unet_is_sd21(full):
    pipeline, _ = full
    assert sum(p.numel() for p in pipeline.generator.unet.parameters()) == 865_910_724  # SD-2.1-base's UNet
    assert pipeline.conditioner.context.shape == (1, 77, 1024)
    assert pipeline.pad_multiple == 64


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    pipeline = osdiff_tiny().eval()
    for module in (pipeline.generator.control.enc_zero_convs, pipeline.generator.control.dec_zero_convs):
        for conv in module:  # a trained control module: non-zero injections
            torch.nn.init.normal_(conv.weight, std=0.02)
    return pipeline


def test_tiny_round_trip_any_size_records_the_seed(tiny):
    image = torch.randint(0, 256, (3, 70, 100), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    encoded, reconstruction = tiny.compress_and_reconstruct(image)
    assert set(encoded.sections) == {"z", "y", SEED_SECTION}
    assert int.from_bytes(encoded.sections[SEED_SECTION], "big") == tiny.codec.seed
    assert reconstruction.shape == (3, 70, 100)
    assert torch.equal(tiny.decompress(encoded), reconstruction)
    # the decoder draws y_T from the stream's seed, not from its own config
    other = dict(encoded.sections, seed=(tiny.codec.seed + 1).to_bytes(4, "big"))
    changed = tiny.decompress(type(encoded)(other, encoded.height, encoded.width, encoded.mode))
    assert not torch.equal(changed, reconstruction)


def test_noise_is_drawn_on_the_cpu_from_the_seed():
    a = latent_noise(5, (1, 4, 8, 8), "cpu")
    assert torch.equal(a, torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(a, latent_noise(6, (1, 4, 8, 8), "cpu"))


def test_controlled_unet_with_zero_convs_is_the_plain_unet():
    """With every injection zero the block-by-block walk must give diffusers' own UNet forward."""
    torch.manual_seed(0)
    generator = OSDiffGenerator(**TINY_GENERATOR).eval()
    x_t, hint = torch.randn(2, 4, 16, 24), torch.randn(2, 4, 16, 24)
    context = torch.randn(2, 77, generator.context_dim)
    t = torch.full((2,), 999)
    expected = generator.unet(x_t, t, encoder_hidden_states=context).sample
    assert torch.allclose(generator.epsilon(x_t, hint, context), expected, atol=1e-5)
    # and a non-zero injection changes it
    torch.nn.init.normal_(generator.control.mid_zero_conv.weight, std=0.1)
    assert not torch.allclose(generator.epsilon(x_t, hint, context), expected, atol=1e-3)


def test_control_module_is_sliced_from_the_base_unet():
    torch.manual_seed(0)
    generator = OSDiffGenerator(**TINY_GENERATOR)
    assert generator.init_control_from_unet() == len(generator.control.encoder.state_dict())
    base, control = generator.unet, generator.control.encoder
    width = control.conv_in.weight.shape[0]
    w = base.conv_in.weight
    assert torch.equal(control.conv_in.weight, torch.cat([w, w], dim=1)[:width])  # 8 inputs: the 4 repeated
    assert torch.equal(control.conv_in.bias, base.conv_in.bias[:width])
    assert torch.equal(control.time_embedding.linear_1.weight, base.time_embedding.linear_1.weight)  # full width
    proj = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"
    ours, theirs = control.state_dict()[proj], base.state_dict()[proj]
    assert torch.equal(ours, theirs[: ours.shape[0], : ours.shape[1]])
    assert all(c.weight.abs().sum() == 0 for c in generator.control.enc_zero_convs)


def test_x0_in_float64_at_t999_with_the_reference_schedule():
    torch.manual_seed(0)
    generator = OSDiffGenerator(**TINY_GENERATOR).eval()
    features, context = torch.randn(1, 8, 8, 8), torch.randn(1, 77, generator.context_dim)
    x_t, hint = features.split(4, dim=1)
    expected = x0_from_epsilon(x_t, generator.epsilon(x_t, hint, context), ldm_alpha_bar(999))
    assert torch.equal(generator(features, context), expected)
    assert ldm_alpha_bar(999) == pytest.approx(0.004660, abs=1e-6)


@pytest.mark.parametrize("side", [256, 384, 512, 640])
def test_discriminator_works_at_any_crop(side):
    torch.manual_seed(0)
    pipeline = osdiff_tiny()
    discriminator = discriminator_for(pipeline.generator)
    latent = torch.randn(2, 4, side // 8, side // 8)
    context = pipeline.conditioner.context.expand(2, -1, -1)
    logits = discriminator(latent, torch.tensor([10, 900]), context)
    assert logits.shape == (2,) and torch.isfinite(logits).all()


def test_generator_side_adversarial_loss_reaches_the_generator():
    torch.manual_seed(0)
    pipeline = osdiff_tiny()
    discriminator = discriminator_for(pipeline.generator).requires_grad_(False)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    out = pipeline(image, decode=False)
    _, fake_t, t = noised_pair(out.latent, out.latent_hat)
    loss = generator_loss(discriminator(fake_t, t, pipeline.conditioning(out.codec)))
    loss.backward()
    grads = [p.grad for p in pipeline.generator.control.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in discriminator.parameters())


def test_stream_without_a_seed_is_refused(tiny):
    from onestep.errors import StreamError

    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    encoded = tiny.compress(image)
    for sections in (
        {k: v for k, v in encoded.sections.items() if k != SEED_SECTION},
        {**encoded.sections, "seed": b"\x01"},
    ):
        with pytest.raises(StreamError, match="no 4-byte seed section"):
            tiny.decompress(type(encoded)(sections, encoded.height, encoded.width, encoded.mode))
