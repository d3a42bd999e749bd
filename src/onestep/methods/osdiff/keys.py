"""Names in the released checkpoints (ldm / Lightning) for every tensor of our OSDiff pipeline.

Written from the two code bases (diffusers' module tree, ldm's `openaimodel.py` / `model.py` and the
reference's `model/osdiff.py`, `model/lfgcm.py`), not with diffusers' single-file loader (it fetches configs
from the hub). Each function maps one of our keys to the checkpoint's; `reference_key` dispatches on the
pipeline's part.

    ours                                        checkpoint (merged ldm SD-2.1 + Lightning lambda_N)
    generator.unet.*                            model.diffusion_model.*                (ldm UNet)
    generator.control.encoder.*                 control_model.control_model.*          (ldm names, 0.2 width)
    generator.control.enc_zero_convs.{i}.*      control_model.enc_zero_convs_out.{i}.0.*
    generator.control.mid_zero_conv.*           control_model.middle_block_out.0.*
    generator.control.dec_zero_convs.{i}.*      control_model.dec_zero_convs_out.{i}.0.*
    autoencoder.vae.*                           first_stage_model.*                    (ldm AutoencoderKL)
    codec.analysis / hyper_analysis / hyper_synthesis / synthesis / z_model / prior.*
                                                preprocess_model.encoder / hyper_enc / hyper_dec / decoder /
                                                entropy_bottleneck / (context nets at the top level)
    conditioner.context                         computed from cond_stage_model.model.* (text.py)
    discriminator backbone.* / head.{i}.*       guidance_model.Discriminator.* / guidance_model.DMLP.{i}.*
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_TIME = {"linear_1": "time_embed.0", "linear_2": "time_embed.2"}
_BLOCK = re.compile(r"(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.*)")


def _resnet(rest: str) -> str:
    module, _, leaf = rest.partition(".")
    if module not in _RESNET:
        raise KeyError(rest)
    return f"{_RESNET[module]}.{leaf}"


def ldm_unet_key(key: str, layers_per_block: int = 2, up_attention: Sequence[bool] = (False, True, True, True)) -> str:
    """A diffusers UNet2DConditionModel (or UNetEncoder) key -> ldm `UNetModel` key.

    `up_attention[l]`: whether up block l has attentions (its upsampler is then the third module of the
    output block, else the second)."""
    per_level = layers_per_block + 1
    head, _, rest = key.partition(".")
    if head == "time_embedding":
        module, _, leaf = rest.partition(".")
        return f"{_TIME[module]}.{leaf}"
    if head == "conv_in":
        return f"input_blocks.0.0.{rest}"
    if head == "conv_norm_out":
        return f"out.0.{rest}"
    if head == "conv_out":
        return f"out.2.{rest}"
    if head == "mid_block":
        kind, index, inner = rest.split(".", 2)
        if kind == "attentions":
            return f"middle_block.1.{inner}"
        return f"middle_block.{2 * int(index)}.{_resnet(inner)}"
    match = _BLOCK.fullmatch(key)
    if match is None:
        raise KeyError(key)
    blocks, level, kind, index, inner = match.groups()
    level, index = int(level), int(index)
    if blocks == "down_blocks":
        if kind == "downsamplers":
            return f"input_blocks.{(level + 1) * per_level}.0.op.{inner.removeprefix('conv.')}"
        block = 1 + level * per_level + index
    else:
        block = level * per_level + index
        if kind == "upsamplers":
            slot = 2 if up_attention[level] else 1
            return f"output_blocks.{level * per_level + layers_per_block}.{slot}.{inner}"
    prefix = "input_blocks" if blocks == "down_blocks" else "output_blocks"
    if kind == "attentions":
        return f"{prefix}.{block}.1.{inner}"
    return f"{prefix}.{block}.0.{_resnet(inner)}"


_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_BLOCK = re.compile(
    r"(encoder|decoder)\.(down_blocks|up_blocks)\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.*)"
)


def ldm_vae_key(key: str, levels: int = 4) -> str:
    """A diffusers AutoencoderKL key -> ldm `AutoencoderKL` key (the decoder's levels run in reverse)."""
    for ours, theirs in (("conv_norm_out", "norm_out"),):
        key = key.replace(f".{ours}.", f".{theirs}.")
    match = _VAE_BLOCK.fullmatch(key)
    if match:
        side, _, level, kind, index, rest = match.groups()
        level_index = int(level) if side == "encoder" else levels - 1 - int(level)
        group = "down" if side == "encoder" else "up"
        if kind == "resnets":
            module, _, leaf = rest.partition(".")
            return f"{side}.{group}.{level_index}.block.{index}.{_VAE_RESNET.get(module, module)}.{leaf}"
        sampler = "downsample" if kind == "downsamplers" else "upsample"
        return f"{side}.{group}.{level_index}.{sampler}.{rest}"
    match = re.fullmatch(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if match:
        side, kind, index, rest = match.groups()
        if kind == "resnets":
            module, _, leaf = rest.partition(".")
            return f"{side}.mid.block_{int(index) + 1}.{_VAE_RESNET.get(module, module)}.{leaf}"
        module, _, leaf = rest.rpartition(".")
        return f"{side}.mid.attn_1.{_VAE_ATTENTION[module]}.{leaf}"
    return key


def is_vae_attention_projection(key: str) -> bool:
    """ldm's VAE attention uses 1x1 convs where diffusers uses linear layers: those weights get 1 x 1 dims."""
    return bool(
        re.fullmatch(r"vae\.(encoder|decoder)\.mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight", key)
    )


_CODEC = {
    "analysis": "encoder",
    "hyper_analysis": "hyper_enc",
    "hyper_synthesis": "hyper_dec",
    "synthesis": "decoder",
    "z_model": "entropy_bottleneck",
}


def codec_key(key: str) -> str:
    """Our OSDiffCodec key -> the reference LFGCM key (without `preprocess_model.`)."""
    head, _, rest = key.partition(".")
    if head in _CODEC:
        return f"{_CODEC[head]}.{rest}"
    if head == "prior":  # the context networks sit at LFGCM's top level
        return rest
    raise KeyError(key)


def control_key(key: str, layers_per_block: int = 2) -> str:
    """Our ControlModule key -> the reference CDDM key (without `control_model.`)."""
    head, _, rest = key.partition(".")
    if head == "encoder":
        return "control_model." + ldm_unet_key(rest, layers_per_block)
    if head in ("enc_zero_convs", "dec_zero_convs"):
        index, _, leaf = rest.partition(".")
        return f"{head[:3]}_zero_convs_out.{index}.0.{leaf}"
    if head == "mid_zero_conv":
        return f"middle_block_out.0.{rest}"
    raise KeyError(key)


def discriminator_key(key: str, layers_per_block: int = 2) -> str:
    """Our LatentDiscriminator key -> the reference GuidanceModel key (without `guidance_model.`)."""
    head, _, rest = key.partition(".")
    if head == "backbone":
        return "Discriminator." + ldm_unet_key(rest, layers_per_block)
    if head == "head":
        return f"DMLP.{rest}"
    raise KeyError(key)
