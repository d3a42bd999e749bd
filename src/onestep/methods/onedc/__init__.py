"""OneDC, the one-step diffusion codec (digest: ../shared/reference/onedc.md), as one package.

    model.py       the composition (`full`, `tiny`): KL autoencoder + `OneDCCodec` + SD1.5 one-step UNet
    codec.py       `OneDCCodec` (FSQ hyperprior + 4-pass prior from codecs/, with OneDC's own parts:)
    encoder.py     pixels + latent -> y and the semantic map;   decoder.py  y_hat + semantic map -> features
    semantic.py    the semantic adaptor (hyperprior -> cross-attention tokens)
    codec_keys.py  unet_keys.py   the released checkpoint's key names;   importer.py  `onestep import onedc`
    training.py    stage I with the semantic distillation (distillation.py: Codeformer head in codeformer.py,
                   MaskGIT VQGAN teacher in maskgit_vqgan.py); stage II is the generic one
    configs/       training presets: `onestep train onedc:stage1`, `onedc:stage2`

Nothing here imports torch: the registry reads `METHOD` without building anything.
"""

from __future__ import annotations

from ..registry import Method

METHOD = Method(
    name="onedc",
    description="OneDC: SD2.1 VAE, hyperprior codec with semantic tokens, SD1.5 one-step UNet",
    architectures={"full": "onestep.methods.onedc.model:onedc_full", "tiny": "onestep.methods.onedc.model:onedc_tiny"},
    importer="onestep.methods.onedc.importer",
    tasks={"stage1": "onestep.methods.onedc.training:STAGE1", "stage2": "onestep.train.stage2:TASK"},
    configs={"stage1": "configs/stage1.yaml", "stage2": "configs/stage2.yaml"},
    stream_formats={"onedc-bin": "onestep.methods.onedc.bin_format"},
    bench={  # the UNet merged (lora_rank 0), as deployed for inference
        "full": {"arch": "full", "kwargs": {"lora_rank": 0}, "size": "768x512", "dtypes": "float32,bfloat16"},
        "full-z-only": {"arch": "full", "kwargs": {"lora_rank": 0}, "size": "768x512", "mode": "z-only"},
        "full-lora": {"arch": "full", "kwargs": {"lora_rank": 64}, "size": "768x512", "dtypes": "float32"},
        "tiny": {"arch": "tiny", "kwargs": {"lora_rank": 0}, "size": "256x256", "dtypes": "float32"},
    },
)
