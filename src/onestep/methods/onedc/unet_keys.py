"""Names of OneStepUNet's weights in OneDC's released `model.safetensors`.

The release stores the peft-wrapped diffusers UNet with `vae_reduction` inside it:
    ours                                         released
    unet.<m>.lora_A.weight                       <m>.lora_A.default.weight   (same for lora_B)
    unet.<m>.base_layer.weight                   <m>.base_layer.weight
    unet.<p>                                     <p>                          (unwrapped layers)
    vae_reduction.<p>                            vae_reduction.<p>
"""

from __future__ import annotations

import re

UNET_PREFIX = "unet."
REDUCTION_PREFIX = "vae_reduction."
_OURS_LORA = re.compile(r"\.lora_([AB])\.weight$")
_OFFICIAL_LORA = re.compile(r"\.lora_([AB])\.default\.weight$")


def official_unet_key(key: str) -> str:
    """Our generator's state-dict key -> the released checkpoint's key."""
    key = _OURS_LORA.sub(r".lora_\1.default.weight", key)
    if key.startswith(REDUCTION_PREFIX):
        return key
    if not key.startswith(UNET_PREFIX):
        raise KeyError(f"{key!r} is not a OneStepUNet weight")
    return key[len(UNET_PREFIX) :]


def our_unet_key(key: str) -> str:
    """The released checkpoint's key -> our generator's state-dict key."""
    key = _OFFICIAL_LORA.sub(r".lora_\1.weight", key)
    return key if key.startswith(REDUCTION_PREFIX) else UNET_PREFIX + key
