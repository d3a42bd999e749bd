"""Semantic distillation parts: the Codeformer head, the MaskGIT VQGAN tokenizer, the k-means teacher."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from onestep.errors import ConfigError, ModelError
from onestep.methods.onedc.codeformer import Codeformer, WindowAttention
from onestep.methods.onedc.distillation import EfficientNetKMeans, HalfSizeVQGAN, SemanticDistillation
from onestep.methods.onedc.maskgit_vqgan import MaskGitVQGANTokenizer


def test_codeformer_output_is_twice_the_input_resolution():
    torch.manual_seed(0)
    head = Codeformer(in_dim=24, dim=32, codes=10, heads=2, blocks=2, window=4)
    for h, w in ((2, 2), (3, 5)):  # not multiples of the window: padded for attention, cropped back
        logits = head(torch.randn(2, 24, h, w))
        assert logits.shape == (2, 10, 2 * h, 2 * w) and torch.isfinite(logits).all()


def test_codeformer_reference_size():
    """Digest §5.9: 60,315,392 parameters, of which 393,216 are the frozen shift masks we compute instead."""
    assert sum(p.numel() for p in Codeformer().parameters()) == 60_315_392 - 393_216


def test_shifted_windows_do_not_mix_regions():
    """After the cyclic roll, a window spans image regions that are not neighbours: the mask must keep
    them apart, so changing a token in one region leaves tokens of another region untouched."""
    torch.manual_seed(0)
    attention = WindowAttention(dim=8, heads=2, window=4, shifted=True, position_bias=False)
    x = torch.randn(1, 4, 4, 8)  # one window: after the roll by 2, rows/cols 0-1 and 2-3 are different regions
    y = x.clone()
    y[0, 0, 0] += 5.0  # region (top, left)
    changed = (attention(x) - attention(y)).abs().sum(-1)[0] > 1e-6
    assert changed[0, 0] and changed[0:2, 0:2].all()
    assert not changed[2:, :].any() and not changed[:, 2:].any()
    plain = WindowAttention(dim=8, heads=2, window=4, shifted=False, position_bias=True)
    assert ((plain(x) - plain(y)).abs().sum(-1)[0] > 1e-6).all(), "unshifted: the whole window attends"


def test_maskgit_tokenizer_shapes_and_loading(tmp_path):
    torch.manual_seed(0)
    small = dict(hidden=32, channel_mult=(1, 2), res_blocks=1, z_channels=8, codes=16)
    tokenizer = MaskGitVQGANTokenizer(**small).eval()
    codes, quantized = tokenizer(torch.rand(2, 3, 32, 48) * 2 - 1)
    assert codes.shape == (2, 16, 24) and quantized.shape == (2, 8, 16, 24)  # one 2x pool for two levels
    assert torch.equal(quantized, tokenizer.codebook[codes].permute(0, 3, 1, 2))
    half = HalfSizeVQGAN(tokenizer)
    assert half(torch.rand(1, 3, 64, 96) * 2 - 1)[0].shape == (1, 16, 24)
    full = MaskGitVQGANTokenizer()
    assert sum(p.numel() for p in full.encoder.parameters()) == pytest.approx(23.78e6, rel=0.01)  # digest §5.9
    state = {k: v for k, v in full.state_dict().items()}
    state["decoder.conv_in.weight"] = torch.zeros(1)  # a real file also holds the decoder: ignored
    save_file(state, str(tmp_path / "vqgan.safetensors"))
    loaded = MaskGitVQGANTokenizer.from_file(tmp_path / "vqgan.safetensors")
    assert torch.equal(loaded.codebook, full.codebook)
    del state["encoder.conv_in.weight"]
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(ModelError, match="missing"):
        MaskGitVQGANTokenizer.from_file(tmp_path / "broken.safetensors")


def test_kmeans_teacher_and_distillation_loss():
    torch.manual_seed(0)
    images = [torch.rand(3, 64, 64) * 2 - 1 for _ in range(4)]
    teacher = EfficientNetKMeans(codes=6)
    teacher.fit(images, iterations=5, seed=1)
    again = EfficientNetKMeans(codes=6)
    again.fit(images, iterations=5, seed=1)
    assert torch.equal(teacher.codebook, again.codebook), "the fit is deterministic"
    assert torch.allclose(teacher.codebook.norm(dim=1), torch.ones(6), atol=1e-5)
    codes, quantized = teacher(torch.stack(images))
    assert codes.shape == (4, 2, 2) and quantized.shape == (4, 320, 2, 2)
    with pytest.raises(ConfigError, match="k-means needs"):
        EfficientNetKMeans(codes=64).fit(images[:1])
    head = Codeformer(in_dim=16, dim=32, codes=6, heads=2, blocks=1, window=2)
    distillation = SemanticDistillation(head, teacher, weight=1.0, codebook_mse=0.01)
    loss, logs = distillation(torch.randn(4, 16, 1, 1), torch.stack(images))
    loss.backward()
    assert logs["semantic_ce"] > 0 and head.mlp_head[-1].weight.grad is not None
    with pytest.raises(ConfigError, match="/64"):
        distillation(torch.randn(4, 16, 2, 2), torch.stack(images))
