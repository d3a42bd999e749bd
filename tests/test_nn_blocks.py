"""Shared blocks: reference key names/shapes and the reference's arithmetic (recomputed by hand here)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from onestep.nn.attention import AttnBlock
from onestep.nn.depth_conv import ConvFFN3, DepthConv, DepthConvBlock
from onestep.nn.resnet import ResnetBlock
from onestep.nn.upsample import ResidualBlockUpsample, subpixel_upsample_layers


def shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def resnet_path(block: ResnetBlock, x: torch.Tensor) -> torch.Tensor:
    h = block.conv1(F.silu(block.norm1(x)))
    return block.conv2(F.silu(block.norm2(h)))


def test_resnet_block_same_width_is_residual() -> None:
    torch.manual_seed(0)
    block = ResnetBlock(32).eval()
    x = torch.randn(2, 32, 5, 7)
    assert set(shapes(block)) == {f"{n}.{p}" for n in ("norm1", "norm2") for p in ("weight", "bias")} | {
        "conv1.weight",
        "conv2.weight",
    }
    torch.testing.assert_close(block(x), x + resnet_path(block, x))


def test_resnet_block_shortcut_quirk_acts_on_the_output() -> None:
    torch.manual_seed(0)
    block = ResnetBlock(32, 64).eval()
    assert shapes(block)["nin_shortcut.weight"] == (64, 64, 1, 1)
    assert shapes(block)["conv1.weight"] == (64, 32, 3, 3)
    x = torch.randn(1, 32, 6, 6)
    h = resnet_path(block, x)
    torch.testing.assert_close(block(x), h + F.conv2d(h, block.nin_shortcut.weight))


def test_attn_block_is_single_head_global_attention() -> None:
    torch.manual_seed(0)
    block = AttnBlock(32).eval()
    assert set(shapes(block)) == {f"{n}.{p}" for n in ("norm", "q", "k", "v", "proj_out") for p in ("weight", "bias")}
    x = torch.randn(2, 32, 3, 5)
    h = block.norm(x)
    q, k, v = (conv(h).flatten(2) for conv in (block.q, block.k, block.v))  # B x C x N
    weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(32), dim=-1)  # B x N x N
    expected = x + block.proj_out((v @ weights.transpose(1, 2)).reshape(x.shape))
    torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-5)


def test_depth_conv_block_keys_and_arithmetic() -> None:
    torch.manual_seed(0)
    block = DepthConvBlock(8, 12).eval()
    assert shapes(block) == {
        "block.0.conv1.0.weight": (8, 8, 1, 1),
        "block.0.conv1.0.bias": (8,),
        "block.0.depth_conv.weight": (8, 1, 3, 3),
        "block.0.depth_conv.bias": (8,),
        "block.0.conv2.weight": (12, 8, 1, 1),
        "block.0.conv2.bias": (12,),
        "block.0.adaptor.weight": (12, 8, 1, 1),
        "block.0.adaptor.bias": (12,),
        "block.1.conv.weight": (48, 12, 1, 1),
        "block.1.conv.bias": (48,),
        "block.1.conv_out.weight": (12, 24, 1, 1),
        "block.1.conv_out.bias": (12,),
    }
    assert "block.0.adaptor.weight" not in shapes(DepthConvBlock(8))
    x = torch.randn(1, 8, 5, 4)
    dc: DepthConv = block.block[0]
    ffn: ConvFFN3 = block.block[1]
    mid = dc.adaptor(x) + dc.conv2(dc.depth_conv(F.leaky_relu(dc.conv1[0](x), 0.01)))
    a, b = ffn.conv(mid).chunk(2, dim=1)
    expected = mid + ffn.conv_out(F.leaky_relu(a, 0.1) + F.leaky_relu(b, 0.01))
    torch.testing.assert_close(block(x), expected)


def test_residual_block_upsample() -> None:
    torch.manual_seed(0)
    block = ResidualBlockUpsample(8, 4).eval()
    assert shapes(block) == {
        "subpel_conv.0.weight": (16, 8, 1, 1),
        "subpel_conv.0.bias": (16,),
        "conv.weight": (4, 4, 3, 3),
        "conv.bias": (4,),
        "upsample.0.weight": (16, 8, 1, 1),
        "upsample.0.bias": (16,),
    }
    x = torch.randn(2, 8, 3, 5)
    main = F.leaky_relu(block.conv(F.leaky_relu(F.pixel_shuffle(block.subpel_conv[0](x), 2), 0.01)), 0.1)
    expected = main + F.pixel_shuffle(block.upsample[0](x), 2)
    out = block(x)
    assert out.shape == (2, 4, 6, 10)
    torch.testing.assert_close(out, expected)


def test_subpixel_upsample_layers() -> None:
    layers = nn.Sequential(*subpixel_upsample_layers(8, 4))
    assert shapes(layers) == {"0.weight": (32, 8, 1, 1), "0.bias": (32,), "2.weight": (4, 8, 3, 3), "2.bias": (4,)}
    assert layers(torch.randn(1, 8, 3, 4)).shape == (1, 4, 6, 8)
