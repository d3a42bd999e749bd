"""What the reference-equivalence comparison taught, pinned without the reference: every normalisation
layer's eps and the padding mode of each coding mode, as the reference code uses them (digest
../shared/reference/onedc.md §1, §5.1, §5.2, §5.7, §5.12; the generator's `vae_reduction` from the reference's
decoder_unet.py lines 20 and 23)."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from onestep.generators.unet import ReductionBlock
from onestep.methods.onedc.codec import OneDCCodec
from onestep.methods.onedc.model import onedc_full, onedc_tiny
from onestep.methods.pipeline import pad_image

# (module name pattern, expected eps), first match wins. Every norm of the pipeline must match one.
REFERENCE_EPS = (
    (r"^autoencoder\.vae\.", 1e-6),  # diffusers AutoencoderKL: resnets and the (windowed) mid attention
    (r"^codec\.encoder\.unet\.conv_in\.", 1e-6),  # the taming ResnetBlocks that replace conv_in
    (r"^codec\.encoder\.unet\.", 1e-5),  # diffusers UNet2DModel at its defaults (§5.2)
    (r"^codec\.", 1e-6),  # taming ResnetBlock / AttnBlock everywhere else in the codec (§5.1)
    (r"^generator\.vae_reduction\.", 1e-6),  # decoder_unet.py lines 20, 23
    (r"^generator\.unet\..*attentions\.\d+\.norm$", 1e-6),  # Transformer2DModel's GroupNorm
    (r"^generator\.unet\.", 1e-5),  # SD1.5's norm_eps; the transformer blocks' LayerNorms
)
NORMS = (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d, nn.InstanceNorm2d)


def _expected_eps(name: str) -> float:
    for pattern, eps in REFERENCE_EPS:
        if re.search(pattern, name):
            return eps
    raise AssertionError(f"{name}: a norm the reference table does not cover")


@pytest.mark.parametrize("build", [onedc_tiny, onedc_full], ids=["tiny", "full"])
def test_every_norm_eps_is_the_reference_one(build):
    with torch.device("meta"):  # the full architecture's structure without its 1.4 G parameters
        model = build()
    norms = {name: m for name, m in model.named_modules() if isinstance(m, NORMS)}
    assert len(norms) > 50
    wrong = {name: m.eps for name, m in norms.items() if m.eps != _expected_eps(name)}
    assert not wrong, wrong
    reductions = [n for n in norms if n.startswith("generator.vae_reduction.")]
    assert len(reductions) == 2


def test_reduction_block_eps_changes_its_output():
    """The eps is not cosmetic: PyTorch's default gives another x0 on the same weights."""
    torch.manual_seed(0)
    block = ReductionBlock(32, 4, 8).eval()
    x = torch.randn(1, 32, 6, 6) * 1e-3  # small activations: eps matters against the variance
    with_default = ReductionBlock(32, 4, 8).eval()
    with_default.load_state_dict(block.state_dict())
    for norm in with_default.blocks:
        if isinstance(norm, nn.GroupNorm):
            norm.eps = 1e-5
    assert not torch.allclose(block(x), with_default(x), atol=1e-6)


def test_padding_modes_are_the_reference_ones():
    codec = OneDCCodec.tiny()
    assert codec.pad_mode("normal") == "replicate"  # §1: right/bottom replicate
    assert codec.pad_mode("z-only") == "reflect"  # §5.12: the z-only inference reflects
    assert codec.pad_mode("reference-rans") == "replicate"  # the .bin files: the reference's encode


def test_z_only_streams_are_made_from_the_reflected_image():
    torch.manual_seed(0)
    model = onedc_tiny(lora_rank=0).eval()
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)  # not a multiple of 64 either way
    x = image.float()[None] / 127.5 - 1
    for mode, pad in (("normal", "replicate"), ("z-only", "reflect"), ("reference-rans", "replicate")):
        padded = F.pad(x, (0, 128 - 70, 0, 64 - 50), mode=pad)
        assert torch.equal(pad_image(x, 64, model.codec.pad_mode(mode)), padded)
        with torch.no_grad():
            expected = model.codec.compress(padded, model.autoencoder.encode(padded), mode=mode)
        assert model.compress(image, mode=mode).sections == expected, mode
