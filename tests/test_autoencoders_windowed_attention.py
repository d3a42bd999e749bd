"""Windowed mid-block attention: equal to global attention for one window, per-window GroupNorm otherwise."""

import pytest
import torch
from diffusers.models.attention_processor import Attention

from onestep.autoencoders.kl import KLAutoencoder
from onestep.autoencoders.windowed_attention import WindowedAttnProcessor, apply_in_windows, set_window


def _attention(channels: int = 16) -> Attention:
    """An attention module built as diffusers builds the VAE mid-block one (own GroupNorm + residual)."""
    torch.manual_seed(0)
    attn = Attention(
        channels,
        heads=1,
        dim_head=channels,
        norm_num_groups=4,
        residual_connection=True,
        bias=True,
        upcast_softmax=True,
        _from_deprecated_attn_block=True,
    )
    return attn.eval()


def _reference_per_window(attn: Attention, x: torch.Tensor, window: int) -> torch.Tensor:
    """The definition: a loop over windows from the top-left, each attended (and normalised) on its own."""
    set_window(attn, None)
    out = torch.empty_like(x)
    for top in range(0, x.shape[2], window):
        for left in range(0, x.shape[3], window):
            crop = x[:, :, top : top + window, left : left + window].contiguous()
            out[:, :, top : top + window, left : left + window] = attn(crop)
    return out


@pytest.mark.parametrize("size", [(8, 8), (12, 20), (5, 11), (3, 3), (16, 7)])
def test_windowed_equals_per_window_reference(size: tuple[int, int]) -> None:
    attn = _attention()
    x = torch.randn(2, 16, *size) * 3 + 1
    with torch.no_grad():
        expected = _reference_per_window(attn, x, window=4)
        set_window(attn, 4)
        assert isinstance(attn.processor, WindowedAttnProcessor)
        got = attn(x)
    assert (got - expected).abs().max() < 1e-5


def test_per_window_groupnorm_differs_from_global() -> None:
    attn = _attention()
    # windows with very different statistics: global GN would normalise them together
    x = torch.randn(1, 16, 8, 8)
    x[:, :, :4] = x[:, :, :4] * 5 + 3
    with torch.no_grad():
        global_out = attn(x)
        set_window(attn, 4)
        windowed_out = attn(x)
    assert (global_out - windowed_out).abs().max() > 1e-2


def test_apply_in_windows_tiles_cover_the_map_exactly() -> None:
    # fn marks each tile with its own mean: every output pixel must carry its own window's mean
    x = torch.arange(7 * 10, dtype=torch.float32).reshape(1, 1, 7, 10)
    out = apply_in_windows(lambda t: t.mean(dim=(2, 3), keepdim=True).expand_as(t), x, window=3)
    for top in range(0, 7, 3):
        for left in range(0, 10, 3):
            window = x[:, :, top : top + 3, left : left + 3]
            assert torch.allclose(out[:, :, top : top + 3, left : left + 3], window.mean().expand_as(window))


def test_single_window_model_equals_stock_global_attention() -> None:
    torch.manual_seed(0)
    windowed = KLAutoencoder.tiny(attention_window=16).eval()
    stock = KLAutoencoder.tiny(attention_window=None).eval()
    stock.load_state_dict(windowed.state_dict())
    x = torch.rand(1, 3, 96, 128) * 2 - 1  # latent 12 x 16: fits in one 16 x 16 window
    with torch.no_grad():
        z_w, z_s = windowed.encode(x), stock.encode(x)
        assert (z_w - z_s).abs().max() < 1e-5
        assert (windowed.decode(z_s) - stock.decode(z_s)).abs().max() < 1e-5


def test_several_windows_change_the_model_output() -> None:
    torch.manual_seed(0)
    windowed = KLAutoencoder.tiny(attention_window=4).eval()
    stock = KLAutoencoder.tiny(attention_window=None).eval()
    stock.load_state_dict(windowed.state_dict())
    x = torch.rand(1, 3, 64, 80) * 2 - 1  # latent 8 x 10: windows 4 x 4 with partial ones on the right
    with torch.no_grad():
        assert (windowed.encode(x) - stock.encode(x)).abs().max() > 1e-4


def test_model_mid_attention_matches_reference_loop() -> None:
    torch.manual_seed(0)
    model = KLAutoencoder.tiny(attention_window=4).eval()
    attn = model.vae.encoder.mid_block.attentions[0]
    x = torch.randn(2, attn.to_q.in_features, 9, 6)
    with torch.no_grad():
        got = attn(x)
        expected = _reference_per_window(attn, x, window=4)
    assert (got - expected).abs().max() < 1e-5
