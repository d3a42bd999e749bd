"""The AVIF-restoration model (the packaged default from v2 on): an AVIF base layer at 1/1, 1/2 or 1/4
resolution (`codecs/avif_base.py`) plus one call of a local, quality-conditioned restoration generator
(`generators/restore.py`). See `model.py`; training pairs in `pairs.py`, the CPU trainer in `train.py`.

Nothing here imports torch: the registry reads `METHOD` without building anything.
"""

from __future__ import annotations

from ..registry import Method

METHOD = Method(
    name="avif_restore",
    description="AVIF base layer (1/1, 1/2, 1/4 size) + one-step restoration generator (rate control: 12 qualities)",
    architectures={
        "full": "onestep.methods.avif_restore.model:full",
        "tiny": "onestep.methods.avif_restore.model:tiny",
    },
    bench={"default": {"arch": "full", "size": "768x512", "dtypes": "float32", "mode": "normal"}},
)
