"""OneDC's training tasks: stage I is the generic one plus the semantic distillation into the hyperprior
(digest §5.9) with its own `semantic` config section; stage II is the generic distillation."""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from ...train.stage1 import Stage1
from ...train.tasks import TrainingTask
from ..pipeline import OneStepPipeline


def make_stage1(config: dict[str, Any], pipeline: OneStepPipeline, dataset: Any) -> Stage1:
    from .distillation import make_semantic_distillation

    return Stage1(pipeline, config, make_semantic_distillation(config, pipeline, dataset))


def check_stage1(config: dict[str, Any]) -> None:
    if config["data"]["latents"] and config["semantic"]["weight"]:
        raise ConfigError("latent training (data.latents) cannot distil semantics: set semantic.weight to 0")


STAGE1 = TrainingTask(
    "stage1",
    make_stage1,
    sections={
        "semantic": {
            "weight": 0.0,  # reference: 0.001; 0 turns the distillation off
            "codebook_mse": 0.01,
            "teacher": "auto",  # auto | maskgit | efficientnet_kmeans
            "vqgan_weights": None,  # MaskGIT VQGAN (maskgit-vqgan-imagenet-f16-256) weights, if you have them
            "kmeans": {"codes": 256, "fit_images": 64, "iterations": 20},  # the substitute teacher's codebook
            "head": {"dim": 768, "heads": 12, "blocks": 3, "window": 16, "mlp_ratio": 4},
        }
    },
    check=check_stage1,
)
