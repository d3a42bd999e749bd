"""`onestep import osdiff SD_CKPT LAMBDA_CKPT -o MODEL_DIR`: the released OSDiff files -> one of our model folders.

The release is the ldm-format SD-2.1-base checkpoint `v2-1_512-ema-pruned.ckpt` (UNet, VAE, OpenCLIP text
tower) plus a Lightning checkpoint `lambda_N.ckpt` (control module, LFGCM, discriminator, maybe copies of the
frozen parts). As the reference's `inference.py` does, the two state dicts are merged, the second winning.

Every tensor of our architecture is looked up under its checkpoint name (`keys.py`) and its shape checked
before anything is written; the checkpoint's other keys must be ones we know to leave out:
  - the LFGCM's dead SFT layers and `f_c` branch (built by the reference, never called),
  - CompressAI's coder state (`_offset`, `_quantized_cdf`, `_cdf_length`, scale tables, bounds): rebuilt,
  - the discriminator (`guidance_model.*`, a training part), ldm's schedule buffers and EMA bookkeeping,
  - the text tower, which is used here once: it computes the empty-prompt embedding (`text.py`).
`control_model.scale_list` must be uniform (the reference's are all 1.0) and becomes `control_scale`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import torch

from ...errors import ConfigError, ModelError
from ...modeling import shape_mismatches
from ..pipeline import OneStepPipeline
from .checkpoint import read_state_dict
from .keys import codec_key, control_key, is_vae_attention_projection, ldm_unet_key, ldm_vae_key
from .model import ARCHITECTURES, NAME
from .text import empty_prompt_embedding

TEXT_PREFIX = "cond_stage_model.model."
SCALE_LIST = "control_model.scale_list"
LIKELIHOOD_BOUND = "preprocess_model.entropy_bottleneck.likelihood_lower_bound.bound"
SHOWN = 4
_LEFT_OUT = re.compile(
    r"preprocess_model\.(hyper_enc\.(sft_feature|h_a1\.|h_a4\.|h_a7\.|h_a8\.)|f_c\.)"  # dead layers
    r"|preprocess_model\.(entropy_bottleneck\.(_offset|_quantized_cdf|_cdf_length|likelihood_lower_bound\.)"
    r"|gaussian_conditional\.)"  # CompressAI's coder state
    r"|guidance_model\.|model_ema\.|[^.]+$"  # the discriminator, EMA bookkeeping, ldm's schedule buffers
)


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sd_checkpoint", help="the ldm SD-2.1-base checkpoint (v2-1_512-ema-pruned.ckpt)")
    parser.add_argument("osdiff_checkpoint", help="the released Lightning checkpoint (lambda_1.ckpt, lambda_2.ckpt)")
    parser.add_argument("-o", "--output", required=True, help="model folder to write")
    parser.add_argument("--name", default=NAME, help=f"model name written into every stream (default {NAME})")
    parser.add_argument("--seed", type=int, default=None, help="seed of y_T written into new streams (default 231)")
    parser.add_argument(
        "--arch", choices=sorted(ARCHITECTURES), default="full", help="architecture of the checkpoint (tiny: tests)"
    )


def run(name: str, args: argparse.Namespace) -> int:
    folder = import_osdiff(
        args.sd_checkpoint, args.osdiff_checkpoint, args.output, arch=args.arch, name=args.name, seed=args.seed
    )
    print(f"wrote {folder}")
    return 0


def _locate(pipeline: OneStepPipeline) -> Callable[[str], str | None]:
    """Our key -> the merged checkpoint's key (None: not from the checkpoint)."""
    unet = pipeline.generator.unet.config
    layers = int(unet["layers_per_block"])
    up_attention = [t.startswith("CrossAttn") for t in unet["up_block_types"]]
    levels = len(pipeline.autoencoder.vae.config.block_out_channels)

    def locate(key: str) -> str | None:
        part, _, rest = key.partition(".")
        if part == "autoencoder":
            return "first_stage_model." + ldm_vae_key(rest.removeprefix("vae."), levels)
        if part == "codec":
            return "preprocess_model." + codec_key(rest)
        if part == "generator" and rest.startswith("unet."):
            return "model.diffusion_model." + ldm_unet_key(rest.removeprefix("unet."), layers, up_attention)
        if part == "generator" and rest.startswith("control."):
            return "control_model." + control_key(rest.removeprefix("control."), layers)
        if key == "conditioner.context":
            return None
        raise ModelError(f"no checkpoint name for {key}")

    return locate


def _expected_shape(key: str, tensor: torch.Tensor) -> tuple[int, ...]:
    shape = tuple(tensor.shape)
    return (
        (*shape, 1, 1)
        if key.startswith("autoencoder.") and is_vae_attention_projection(key.removeprefix("autoencoder."))
        else shape
    )


def import_osdiff(
    sd_checkpoint: str | os.PathLike[str],
    osdiff_checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    arch: str = "full",
    name: str = NAME,
    seed: int | None = None,
) -> Path:
    """Convert the two released files into a model folder; returns the folder."""
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    merged = {**read_state_dict(sd_checkpoint, "SD-2.1 ldm checkpoint")}
    merged.update(read_state_dict(osdiff_checkpoint, "OSDiff Lightning checkpoint"))
    with torch.device("meta"):
        pipeline = ARCHITECTURES[arch](name=name, seed=seed)
    locate = _locate(pipeline)
    ours = pipeline.state_dict()
    sources = {k: locate(k) for k in ours}
    expected = {sources[k]: _expected_shape(k, v) for k, v in ours.items() if sources[k] is not None}
    text = {k[len(TEXT_PREFIX) :]: v for k, v in merged.items() if k.startswith(TEXT_PREFIX)}
    known = set(expected) | {SCALE_LIST}
    given = {
        k: tuple(v.shape)
        for k, v in merged.items()
        if k in known or not (k.startswith(TEXT_PREFIX) or _LEFT_OUT.match(k))
    }
    problems = shape_mismatches(expected, {k: s for k, s in given.items() if k != SCALE_LIST}, shown=SHOWN)
    if not text:
        problems.append(f"no text tower ({TEXT_PREFIX}*)")
    if SCALE_LIST not in merged:
        problems.append(f"no {SCALE_LIST}")
    if problems:
        raise ModelError(
            f"{sd_checkpoint} + {osdiff_checkpoint} are not an OSDiff release ({arch}): " + "; ".join(problems)
        )
    bound = merged.get(LIKELIHOOD_BOUND)
    if bound is not None and not math.isclose(
        float(bound.reshape(-1)[0]), pipeline.codec.z_model.likelihood_bound, rel_tol=1e-6
    ):
        raise ModelError(
            f"{LIKELIHOOD_BOUND} is {float(bound.reshape(-1)[0])}, ours is {pipeline.codec.z_model.likelihood_bound}"
        )
    scales = merged[SCALE_LIST].float()
    injections = 2 * len(pipeline.generator.control.enc_zero_convs) + 1
    if scales.numel() != injections or not torch.all(scales == scales[0]):
        raise ModelError(f"{SCALE_LIST} must hold {injections} equal scales, got {scales.tolist()}")
    context = empty_prompt_embedding(text)
    wanted = tuple(ours["conditioner.context"].shape)
    if tuple(context.shape) != wanted:
        raise ModelError(f"the text tower gives a {tuple(context.shape)} embedding, the UNet needs {wanted}")

    state: dict[str, torch.Tensor] = {"conditioner.context": context}
    for key, tensor in ours.items():
        if sources[key] is not None:
            state[key] = merged[sources[key]].reshape(tensor.shape).to(torch.float32).contiguous()
    pipeline.load_state_dict(state, strict=True, assign=True)
    generator = pipeline.generator
    generator.control.scale = float(scales[0])
    generator.config = {**generator.config, "control_scale": float(scales[0])}
    return pipeline.save_pretrained(output)
