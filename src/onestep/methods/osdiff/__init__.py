"""OSDiff, one-step diffusion for perceptual image compression (digest: ../shared/reference/osdiff-sodec.md §1).

    model.py          the composition (`full`, `tiny`): SD-2.1 VAE + `OSDiffCodec` + empty-prompt context +
                      SD-2.1 UNet with the 0.2-width control module
    codec.py          LFGCM on the SD latent (transforms.py) with the factorized prior and the checkerboard +
                      channel-slice prior; the seed of y_T travels in the stream
    control.py        the controlled UNet (unet_blocks.py: diffusers blocks walked as ldm's), sd21.py its config
    discriminator.py  the latent discriminator and its losses (training)
    text.py           the OpenCLIP text tower in plain torch, for the empty-prompt embedding at import
    training.py       the training task (generator, aux quantile, discriminator phases); configs/ presets
    keys.py           ldm / Lightning names;  checkpoint.py  tensors-only reading;  importer.py  `onestep import osdiff`
    reference_harness.py   equivalence with the public code (not run by CI)

Nothing here imports torch: the registry reads `METHOD` without building anything.
"""

from __future__ import annotations

from ..registry import Method

METHOD = Method(
    name="osdiff",
    description="OSDiff: SD2.1 VAE, LFGCM latent codec (factorized z, checkerboard y), SD2.1 UNet + control module",
    architectures={
        "full": "onestep.methods.osdiff.model:osdiff_full",
        "tiny": "onestep.methods.osdiff.model:osdiff_tiny",
    },
    importer="onestep.methods.osdiff.importer",
    tasks={"osdiff": "onestep.methods.osdiff.training:TASK"},
    configs={
        "lambda1": "configs/lambda1.yaml",
        "lambda2": "configs/lambda2.yaml",
        "lambda1-multi-gpu": "configs/lambda1_multi_gpu.yaml",
    },
    bench={
        "full": {"arch": "full", "size": "768x512", "dtypes": "float32,bfloat16", "mode": "normal"},
        "tiny": {"arch": "tiny", "size": "256x256", "dtypes": "float32", "mode": "normal"},
    },
)
