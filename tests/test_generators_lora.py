import pytest
import torch
from torch import nn

from onestep.generators.lora import LoRALayer, add_lora, is_target, lora_parameters, merge_lora


def _randomise_b(model: nn.Module) -> None:
    # Fresh adapters have B = 0; give them values so merging has something to fold in.
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, LoRALayer):
            m.lora_B.weight.data = torch.randn(m.lora_B.weight.shape, generator=gen) * 0.1


@pytest.mark.parametrize(
    "base, shape",
    [
        (nn.Linear(12, 20), (3, 5, 12)),
        (nn.Conv2d(6, 10, 3, stride=2, padding=1), (2, 6, 9, 11)),
        (nn.Conv2d(6, 10, 1), (2, 6, 7, 7)),
    ],
)
def test_merge_equals_unmerged(base, shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    reference = base(x)
    layer = LoRALayer(base, rank=4, alpha=8)
    assert torch.equal(layer(x), reference)  # B starts at zero: a fresh adapter is a no-op
    _randomise_b(layer)
    unmerged = layer(x)
    assert (unmerged - reference).abs().max() > 1e-3
    merged = layer.merged()
    assert isinstance(merged, type(base))
    assert (merged(x) - unmerged).abs().max() < 1e-5


def test_conv_adapter_shapes_follow_peft():
    layer = LoRALayer(nn.Conv2d(320, 640, 3, stride=2, padding=1), rank=64, alpha=8)
    assert layer.lora_A.weight.shape == (64, 320, 3, 3) and layer.lora_A.stride == (2, 2)
    assert layer.lora_B.weight.shape == (640, 64, 1, 1)
    assert layer.lora_A.bias is None and layer.lora_B.bias is None
    assert layer.scale == 0.125


def test_target_rule():
    targets, exclude = ("to_q", "to_out.0", "conv1", "downsamplers.0.conv"), ("conv_in", "add_attentions")
    assert is_target("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", targets, exclude)
    assert is_target("up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0", targets, exclude)
    assert is_target("conv1", targets, exclude)
    assert not is_target("mid_block.resnets.0.my_conv1", targets, exclude)
    assert not is_target("conv_in.0.conv1", targets, exclude)
    assert not is_target("down_blocks.0.add_attentions.0.to_q", targets, exclude)
    assert is_target("down_blocks.1.downsamplers.0.conv", targets, exclude)


def test_add_and_merge_on_a_small_network():
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("conv_in", nn.Conv2d(3, 8, 3, padding=1))
    net.add_module("conv1", nn.Conv2d(8, 8, 3, padding=1))
    net.add_module("act", nn.SiLU())
    net.add_module("conv2", nn.Conv2d(8, 3, 1))
    x = torch.randn(1, 3, 6, 6)
    names = add_lora(net, rank=2, alpha=8, targets=("conv1", "conv2", "conv_in"), exclude=("conv_in",))
    assert names == ["conv1", "conv2"]
    assert len(lora_parameters(net)) == 4
    _randomise_b(net)
    unmerged = net(x)
    assert merge_lora(net) == 2
    assert not any(isinstance(m, LoRALayer) for m in net.modules())
    assert (net(x) - unmerged).abs().max() < 1e-5


def test_refuses_other_layers():
    with pytest.raises(TypeError):
        LoRALayer(nn.GroupNorm(2, 4), rank=2, alpha=2)
    with pytest.raises(ValueError):
        LoRALayer(nn.Linear(2, 2), rank=0, alpha=2)
