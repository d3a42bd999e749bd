"""The Stable Diffusion family KL autoencoder (diffusers `AutoencoderKL`) with windowed mid-block attention.

The self-attention in the mid block of both the encoder and the decoder runs within 16 x 16 latent windows
(as the released one-step codec that uses this VAE does), each normalised by the attention's own GroupNorm
(so per window). `attention_window=None` gives the stock global attention. The defaults are SD 2.1's VAE.

The diffusers model is kept whole as `self.vae`, so a diffusers state dict loads with the prefix `vae.`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import nn

from ..errors import ConfigError, ModelError
from ..modeling import load_state_dict_strict, read_json
from ..nn.precision import to_compute_dtype
from .base import Autoencoder
from .weight_files import read_safetensors
from .windowed_attention import set_window

DIFFUSERS_CONFIG = "config.json"
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"

# diffusers config entries that are our constructor arguments; the rest is checked or ignored below
_ARCHITECTURE_KEYS = (
    "block_out_channels",
    "layers_per_block",
    "latent_channels",
    "norm_num_groups",
    "in_channels",
    "out_channels",
    "act_fn",
    "scaling_factor",
    "shift_factor",
    "use_quant_conv",
    "use_post_quant_conv",
    "mid_block_add_attention",
)
# older diffusers files name the attention projections as the original single-head AttentionBlock did
_DEPRECATED_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
_DEPRECATED_PATTERN = re.compile(r"(\.attentions\.\d+\.)(query|key|value|proj_attn)\.")


class SiLUInPlaceAtInference(nn.Module):
    """SiLU that overwrites its input when no gradient is recorded. In the decoder it only ever gets a norm's
    fresh output (its resnets have no time embedding), so the values are the same and one full-size tensor
    fewer is alive: at 768x512, 400 MB less at the decoder's peak (256 channels at full size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x, inplace=not (torch.is_grad_enabled() and x.requires_grad))


class KLAutoencoder(Autoencoder):
    """`encode`: image in [-1, 1] -> (z - shift) * scaling; `decode` inverts the scaling, then decodes.

    Encoding takes the posterior mode by default (deterministic). `sample_posterior=True` draws a sample as
    the reference code of the methods built on this VAE does; the noise comes from the `generator` passed to
    `encode`, else from a generator seeded with `sample_seed` on every call (reproducible streams), or from
    torch's global RNG if that is None.
    """

    def __init__(
        self,
        block_out_channels: tuple[int, ...] = (128, 256, 512, 512),
        layers_per_block: int = 2,
        latent_channels: int = 4,
        norm_num_groups: int = 32,
        in_channels: int = 3,
        out_channels: int = 3,
        act_fn: str = "silu",
        scaling_factor: float = 0.18215,
        shift_factor: float | None = None,
        use_quant_conv: bool = True,
        use_post_quant_conv: bool = True,
        mid_block_add_attention: bool = True,
        attention_window: int | None = 16,
        sample_posterior: bool = False,
        sample_seed: int | None = 0,
    ) -> None:
        super().__init__()
        if attention_window is not None and (not isinstance(attention_window, int) or attention_window < 1):
            raise ConfigError(f"attention_window must be a positive integer or None, got {attention_window!r}")
        if any(c % norm_num_groups for c in block_out_channels):
            raise ConfigError(f"block_out_channels {list(block_out_channels)} must be multiples of {norm_num_groups}")
        depth = len(block_out_channels)
        self.vae = AutoencoderKL(
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=("DownEncoderBlock2D",) * depth,
            up_block_types=("UpDecoderBlock2D",) * depth,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            act_fn=act_fn,
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
            scaling_factor=scaling_factor,
            shift_factor=shift_factor,
            use_quant_conv=use_quant_conv,
            use_post_quant_conv=use_post_quant_conv,
            mid_block_add_attention=mid_block_add_attention,
        )
        self.latent_channels = latent_channels
        self.downsampling = 2 ** (depth - 1)
        self.scaling_factor = scaling_factor
        self.shift_factor = shift_factor or 0.0
        self.sample_posterior = sample_posterior
        self.sample_seed = sample_seed
        self.attention_window = attention_window
        for mid_block in (self.vae.encoder.mid_block, self.vae.decoder.mid_block):
            for attention in mid_block.attentions:
                if attention is not None:
                    set_window(attention, attention_window)
        if act_fn == "silu":  # the decoder's activations at full size: one copy fewer alive at inference
            decoder = self.vae.decoder
            for block in (decoder.mid_block, *decoder.up_blocks):
                for resnet in block.resnets:
                    resnet.nonlinearity = SiLUInPlaceAtInference()
            decoder.conv_act = SiLUInPlaceAtInference()

    @classmethod
    def tiny(cls, **overrides: Any) -> KLAutoencoder:
        """A small random model with the real structure (8x downsampling, mid attention) for tests."""
        config: dict[str, Any] = dict(block_out_channels=(16, 16, 32, 32), layers_per_block=1, norm_num_groups=8)
        return cls(**{**config, **overrides})

    def encode(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # float32 even under autocast, as the reference runs its VAE
        with torch.autocast(device_type=image.device.type, enabled=False):
            posterior = self.vae.encode(image.float()).latent_dist
        if self.sample_posterior:
            if generator is None and self.sample_seed is not None:
                generator = torch.Generator(device=image.device).manual_seed(self.sample_seed)
            z = posterior.sample(generator)
        else:
            z = posterior.mode()
        return (z - self.shift_factor) * self.scaling_factor

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=latent.device.type, enabled=False):
            return self.vae.decode(latent.float() / self.scaling_factor + self.shift_factor).sample.float()

    def set_decoder_dtype(self, dtype: torch.dtype) -> None:
        """The decoder in `dtype` (bfloat16: `nn.precision`), its first and last layers in float32 (the
        latent's and the pixels' rounding would show); the encoder is left as it is."""
        if dtype == torch.float32:
            return
        decoder = self.vae.decoder  # post_quant_conv, before it, stays float32 as it is
        to_compute_dtype(
            decoder, dtype, [(decoder.conv_in, dtype), (decoder.conv_norm_out, None), (decoder.conv_out, None)]
        )

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if k.startswith(self.sender_only_prefixes())}

    def sender_only_prefixes(self) -> tuple[str, ...]:
        return ("vae.encoder.", "vae.quant_conv.")

    def encoding_settings(self) -> dict[str, Any]:
        return {
            "scaling_factor": self.scaling_factor,
            "shift_factor": self.shift_factor,
            "sample_posterior": self.sample_posterior,
            "sample_seed": self.sample_seed if self.sample_posterior else None,
            "attention_window": self.attention_window,
        }

    @classmethod
    def from_diffusers(cls, path: str | os.PathLike[str], device: str = "cpu", **options: Any) -> KLAutoencoder:
        """Load diffusers `AutoencoderKL` weights.

        `path` is a diffusers folder (`config.json` + `diffusion_pytorch_model.safetensors`, the architecture
        read from the config) or a single `.safetensors` file of diffusers keys (the architecture from the
        constructor defaults, i.e. SD 2.1's VAE, and `options`). `options` also set our own arguments
        (`attention_window`, `sample_posterior`, ...) and override the folder's config.
        """
        path = Path(path)
        if path.is_dir():
            architecture = _architecture_from_diffusers_config(path / DIFFUSERS_CONFIG)
            weights = path / DIFFUSERS_WEIGHTS
            if not weights.is_file():
                raise ModelError(f"{path} is not a diffusers VAE folder: {DIFFUSERS_WEIGHTS} is missing")
        elif path.is_file():
            architecture, weights = {}, path
        else:
            raise ModelError(f"{path} does not exist (expected a diffusers VAE folder or a .safetensors file)")
        model = cls(**{**architecture, **options})
        state = {"vae." + _modern_attention_name(k): v for k, v in read_safetensors(weights).items()}
        load_state_dict_strict(model, state, source=str(weights))
        return model.to(device).eval()


def _modern_attention_name(key: str) -> str:
    return _DEPRECATED_PATTERN.sub(lambda m: m.group(1) + _DEPRECATED_ATTENTION[m.group(2)] + ".", key)


def _architecture_from_diffusers_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f"{path.parent} is not a diffusers VAE folder: {path.name} is missing")
    config = read_json(path)
    if not isinstance(config, dict):
        raise ModelError(f"{path} is not a JSON object")
    name = config.get("_class_name", "AutoencoderKL")
    if name != "AutoencoderKL":
        raise ModelError(f"{path} describes a {name}, not an AutoencoderKL")
    for key, block in (("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")):
        if any(t != block for t in config.get(key, [block])):
            raise ModelError(f"{path}: only {block} blocks are supported, got {key}={config[key]}")
    for key in ("latents_mean", "latents_std"):
        if config.get(key) is not None:
            raise ModelError(f"{path}: per-channel {key} normalisation is not supported")
    return {key: config[key] for key in _ARCHITECTURE_KEYS if key in config}
