"""The TAEF2 learned-latent model (the first packaged default, `weights/onestep-default-1.1/`): frozen TAEF2 encoder,
`LatentHyperpriorCodec`, a small conv generator and TAEF2's decoder with the light head. See `model.py`.

Nothing here imports torch: the registry reads `METHOD` without building anything.
"""

from __future__ import annotations

from ..registry import Method

METHOD = Method(
    name="taef2_latent",
    description="TAEF2 latent + FSQ hyperprior + conv generator (small, CPU-trainable)",
    architectures={"full": "onestep.methods.taef2_latent.model:taef2_latent_model"},
    tasks={"stage1": "onestep.train.stage1:TASK"},
    bench={"full": {"arch": "full", "size": "768x512", "dtypes": "float32", "mode": "normal"}},
)
