"""SODEC, fidelity-guided one-step diffusion compression (paper ../shared/papers/004_*, digest
../shared/reference/osdiff-sodec.md §2). No code or weights were ever published: this is a reimplementation
from the paper, its figures and the authors' lineage (HiFiC, OSEDiff, OSCAR).

    model.py      the composition (`full`, `tiny`): SD-2.1 VAE decoder + `SODECCodec` + `FidelityGuidance`
                  + SD-2.1 one-step UNet with LoRA
    codec.py      HiFiC's compression module on pixels (mean-scale hyperprior, factorized z) + H_s + T_s
    guidance.py   the fidelity guidance module: D_a, the backbone registry (F), the projector F_p; `preview`
    networks.py   HiFiC's networks, the hyper-networks and the transformation module
    training.py   rate annealing (three stages) and the GAN fine-tune, as training tasks; configs/ presets

Choices where the paper is silent (each named in a config or an argument, and explained where it is made):
F is EfficientNet-Lite0 offline (`openclip-vit` with weights on disk); F_p is a one-layer 77-query resampler;
T_s is two ResNet blocks, a 2x upsampling and one more block; LoRA rank 16 (OSCAR's); H_s is a third
hyper-synthesis next to HiFiC's mean and scale nets, so that stage 2 freezes the rate exactly.

Nothing here imports torch: the registry reads `METHOD` without building anything.
"""

from __future__ import annotations

from ..registry import Method

METHOD = Method(
    name="sodec",
    description="SODEC: HiFiC codec on pixels, fidelity decoder + backbone tokens, SD2.1 one-step UNet with LoRA",
    architectures={
        "full": "onestep.methods.sodec.model:sodec_full",
        "tiny": "onestep.methods.sodec.model:sodec_tiny",
        "small": "onestep.methods.sodec.model:sodec_small",
    },
    tasks={
        "stage1": "onestep.methods.sodec.training:STAGE1",
        "stage2": "onestep.methods.sodec.training:STAGE2",
        "stage3": "onestep.methods.sodec.training:STAGE3",
        "finetune": "onestep.methods.sodec.training:FINETUNE",
    },
    configs={
        "stage1": "configs/stage1.yaml",
        "stage2": "configs/stage2.yaml",
        "small-stage1": "configs/small-stage1.yaml",
        "small-stage2": "configs/small-stage2.yaml",
        **{f"stage3-r{i}": f"configs/stage3-r{i}.yaml" for i in range(1, 5)},
        **{f"finetune-r{i}": f"configs/finetune-r{i}.yaml" for i in range(1, 5)},
    },
    bench={
        "full": {"arch": "full", "size": "768x512", "dtypes": "float32,bfloat16", "mode": "normal"},
        "small": {"arch": "small", "size": "768x512", "dtypes": "float32", "mode": "normal"},
        "tiny": {"arch": "tiny", "size": "256x256", "dtypes": "float32", "mode": "normal"},
    },
)
