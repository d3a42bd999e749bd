"""Semantic distillation into the hyperprior (digest §5.9), OneDC's stage I only (`training.py`).

The Codeformer head predicts, from the codec's `y_semantic` (/64), the code indices a frozen image
tokenizer gives the image at /32:

    loss = weight * [CE(logits, codes) + codebook_mse * MSE(sum_k p_k codebook_k, teacher's quantised latent)]

Teachers:
- `maskgit`: the MaskGIT VQGAN (1024 codes) on the half-size image, as the reference. Needs its weights
  (`semantic.vqgan_weights`), which are not on this machine.
- `efficientnet_kmeans` (the documented substitute): ImageNet EfficientNet-Lite0's stride-32 features
  (320 channels, unit-normalised) quantised by a k-means codebook fitted, before training, on training
  images. It plays the same role (a semantic token map at /32) with a network that exists here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ...codecs.base import CodecOutput
from ...errors import ConfigError
from ...eval.perceptual import unit_normalize
from ...nn.efficientnet_lite import load_efficientnet_lite0
from .codeformer import Codeformer
from .maskgit_vqgan import MaskGitVQGANTokenizer

FEATURE_STAGE = 6  # EfficientNet-Lite0's last stage: 320 channels at stride 32


class HalfSizeVQGAN(nn.Module):
    """The reference target: the VQGAN (f16) on the image resized to half (so codes are at /32).
    Unlike the reference, both sides are halved (it used H/2 for the width too)."""

    def __init__(self, tokenizer: MaskGitVQGANTokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer

    @property
    def codebook(self) -> torch.Tensor:
        return self.tokenizer.codebook

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = image.shape[-2:]
        small = F.interpolate(image.float(), size=(h // 2, w // 2), mode="bilinear", align_corners=False)
        return self.tokenizer(small)


class EfficientNetKMeans(nn.Module):
    """Images in [-1, 1] -> (nearest k-means code of each stride-32 EfficientNet-Lite0 feature, that code)."""

    def __init__(self, codes: int = 256) -> None:
        super().__init__()
        self.backbone = load_efficientnet_lite0()
        channels = self.backbone.blocks[self.backbone.stage_ends[FEATURE_STAGE]].project.conv.out_channels
        self.register_buffer("codebook", torch.zeros(codes, channels))

    def train(self, mode: bool = True) -> EfficientNetKMeans:
        return super().train(False)  # frozen batch-norm statistics

    @torch.no_grad()
    def features(self, image: torch.Tensor) -> torch.Tensor:
        stages, _ = self.backbone.stage_features(self.backbone.normalize(image.float()))
        return unit_normalize(stages[FEATURE_STAGE].float())

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(image)
        indices = torch.einsum("bdhw,kd->bkhw", features, self.codebook).argmax(1)
        return indices, self.codebook[indices].permute(0, 3, 1, 2)

    @torch.no_grad()
    def fit(self, images: list[torch.Tensor], iterations: int = 20, seed: int = 0) -> None:
        """Spherical k-means on the features of `images` (each 3 x H x W); deterministic given `seed`."""
        vectors = torch.cat([self.features(x[None]).flatten(2)[0].T for x in images])
        codes = self.codebook.shape[0]
        if len(vectors) < codes:
            raise ConfigError(
                f"k-means needs at least {codes} feature vectors, the fitting images give {len(vectors)}: "
                "raise semantic.kmeans.fit_images or lower semantic.kmeans.codes"
            )
        generator = torch.Generator().manual_seed(seed)
        centroids = vectors[torch.randperm(len(vectors), generator=generator)[:codes]].clone()
        for _ in range(iterations):
            assignment = (vectors @ centroids.T).argmax(1)
            sums = torch.zeros_like(centroids).index_add_(0, assignment, vectors)
            counts = torch.bincount(assignment, minlength=codes)
            empty = counts == 0
            refill = torch.randint(len(vectors), (int(empty.sum()),), generator=generator)
            sums[empty] = vectors[refill]  # re-seed empty clusters on random points
            centroids = F.normalize(sums, dim=1)
        self.codebook.copy_(centroids)


class SemanticDistillation(nn.Module):
    def __init__(self, head: Codeformer, teacher: nn.Module, weight: float, codebook_mse: float) -> None:
        super().__init__()
        self.head, self.teacher = head, teacher.requires_grad_(False)
        self.weight, self.codebook_mse = weight, codebook_mse

    def forward(self, y_semantic: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        codes, quantized = self.teacher(image)
        logits = self.head(y_semantic).float()
        if logits.shape[-2:] != codes.shape[-2:]:
            raise ConfigError(
                f"Codeformer output {tuple(logits.shape[-2:])} does not match the teacher's code map "
                f"{tuple(codes.shape[-2:])}: y_semantic must be at /64 of the image"
            )
        ce = F.cross_entropy(logits, codes)
        expected = torch.einsum("bkhw,kd->bdhw", logits.softmax(1), self.teacher.codebook.float())
        mse = F.mse_loss(expected, quantized.float())
        accuracy = (logits.argmax(1) == codes).float().mean()
        loss = self.weight * (ce + self.codebook_mse * mse)
        return loss, {"semantic_ce": ce.item(), "semantic_mse": mse.item(), "semantic_acc": accuracy.item()}

    def codec_loss(self, codec: CodecOutput, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Stage I's auxiliary loss: on the codec's `y_semantic`."""
        if "y_semantic" not in codec.extras:
            raise ConfigError("semantic distillation needs a codec that returns extras['y_semantic']")
        return self(codec.extras["y_semantic"], image)


def _semantic_channels(pipeline: nn.Module) -> int:
    """Probe the codec once with a small blank image to learn the width of its `y_semantic`."""
    size = pipeline.pad_multiple
    with torch.no_grad(), torch.random.fork_rng():
        image = torch.zeros(1, 3, size, size)
        out = pipeline.codec(image, pipeline.autoencoder.encode(image))
    if "y_semantic" not in out.extras:
        raise ConfigError("semantic distillation needs a codec that returns extras['y_semantic']")
    return int(out.extras["y_semantic"].shape[1])


def make_semantic_distillation(
    config: dict[str, Any], pipeline: nn.Module, dataset: Dataset | None = None
) -> SemanticDistillation | None:
    settings = config["semantic"]
    if not settings["weight"]:
        return None
    kind = settings["teacher"]
    weights = settings["vqgan_weights"]
    if kind == "auto":
        kind = "maskgit" if weights and Path(weights).is_file() else "efficientnet_kmeans"
    if kind == "maskgit":
        if not weights:
            raise ConfigError("semantic.teacher maskgit needs semantic.vqgan_weights")
        teacher: nn.Module = HalfSizeVQGAN(MaskGitVQGANTokenizer.from_file(weights))
    elif kind == "efficientnet_kmeans":
        kmeans = settings["kmeans"]
        teacher = EfficientNetKMeans(kmeans["codes"])
        if dataset is None:
            raise ConfigError("the k-means teacher is fitted on training images: pass the dataset")
        count = min(len(dataset), kmeans["fit_images"])
        chosen = np.linspace(0, len(dataset) - 1, count).round().astype(int)
        teacher.fit([dataset[(int(i), int(i))] for i in chosen], kmeans["iterations"], config["seed"])
    else:
        raise ConfigError(f"unknown semantic.teacher {kind!r} (auto, maskgit, efficientnet_kmeans)")
    head_settings = settings["head"]
    head = Codeformer(
        in_dim=_semantic_channels(pipeline),
        dim=head_settings["dim"],
        codes=teacher.codebook.shape[0],
        heads=head_settings["heads"],
        blocks=head_settings["blocks"],
        window=head_settings["window"],
        mlp_ratio=head_settings["mlp_ratio"],
    )
    return SemanticDistillation(head, teacher, float(settings["weight"]), float(settings["codebook_mse"]))
