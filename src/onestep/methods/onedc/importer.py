"""`onestep import onedc CKPT_DIR --vae VAE -o MODEL_DIR`: a released OneDC checkpoint -> one of our model folders.

The release is a folder with `model.safetensors` (the peft-wrapped SD1.5 UNet with conv_in and vae_reduction,
1252 keys) and `model_1.safetensors` (the codec, 779 keys); the SD 2.1 VAE comes separately, as a diffusers
folder or a single safetensors file of diffusers keys. The LoRA adapters are merged (W + alpha/r * B A, convs
included) unless `--keep-lora`.

Both files are checked key by key and shape by shape against the architecture before anything is written.
Tensors are then read one at a time (`safe_open`) and written one at a time, so a full-size import holds
about one tensor in memory besides the VAE, not copies of the whole model.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from ...autoencoders.kl import KLAutoencoder
from ...errors import ConfigError, ModelError
from ...files import write_atomic
from ...generators.lora import LoRALayer, lora_delta
from ...generators.unet import OneStepUNet
from ...modeling import CONFIG_NAME, WEIGHTS_NAME, config_bytes
from ..importing import check_keys, safe_open_checked, write_safetensors_streaming
from ..pipeline import OneStepPipeline
from .codec_keys import our_key_to_reference
from .model import ARCHITECTURES, NAME
from .unet_keys import official_unet_key

UNET_FILE = "model.safetensors"
CODEC_FILE = "model_1.safetensors"


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="released checkpoint folder (model.safetensors, model_1.safetensors)")
    parser.add_argument(
        "--vae", required=True, help="the SD 2.1 VAE: a diffusers folder, or one .safetensors file of diffusers keys"
    )
    parser.add_argument("-o", "--output", required=True, help="model folder to write")
    parser.add_argument("--keep-lora", action="store_true", help="keep the adapters unmerged (for further training)")
    parser.add_argument("--name", default=NAME, help=f"model name written into every stream (default {NAME})")
    parser.add_argument(
        "--arch", choices=sorted(ARCHITECTURES), default="full", help="architecture of the checkpoint (tiny: tests)"
    )
    parser.add_argument(
        "--sample-posterior",
        action="store_true",
        help="encode with a (seeded) VAE posterior sample, as the reference does, instead of its mode",
    )


def run(name: str, args: argparse.Namespace) -> int:
    folder = import_onedc(
        args.checkpoint,
        args.vae,
        args.output,
        arch=args.arch,
        keep_lora=args.keep_lora,
        name=args.name,
        sample_posterior=args.sample_posterior,
    )
    print(f"wrote {folder}")
    return 0


def import_onedc(
    checkpoint: str | os.PathLike[str],
    vae: str | os.PathLike[str],
    output: str | os.PathLike[str],
    arch: str = "full",
    keep_lora: bool = False,
    name: str = NAME,
    sample_posterior: bool = False,
) -> Path:
    """Convert a released checkpoint folder (+ VAE) into a model folder; returns the folder."""
    checkpoint = Path(checkpoint)
    paths = {f: checkpoint / f for f in (UNET_FILE, CODEC_FILE)}
    for path in paths.values():
        if not path.is_file():
            raise ModelError(f"{checkpoint} is not a OneDC checkpoint folder: {path.name} is missing")
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    with torch.device("meta"):
        released = ARCHITECTURES[arch](name=name)  # the architecture as released: LoRA unmerged
    generator_keys = {official_unet_key(k): v for k, v in released.generator.state_dict().items()}
    codec_keys = {our_key_to_reference(k): v for k, v in released.codec.state_dict().items()}
    with ExitStack() as stack:
        unet_file = stack.enter_context(safe_open_checked(paths[UNET_FILE]))
        codec_file = stack.enter_context(safe_open_checked(paths[CODEC_FILE]))
        check_keys(unet_file, generator_keys, paths[UNET_FILE], "OneDC UNet")
        check_keys(codec_file, codec_keys, paths[CODEC_FILE], "OneDC codec")
        autoencoder = KLAutoencoder.from_diffusers(vae, sample_posterior=sample_posterior)
        if autoencoder.latent_channels != released.generator.latent_channels:
            raise ModelError(
                f"{vae} has {autoencoder.latent_channels} latent channels; "
                f"OneDC needs {released.generator.latent_channels}"
            )

        generator_config = dict(released.generator.config)
        if not keep_lora:
            generator_config["lora_rank"] = 0
        with torch.device("meta"):
            generator = OneStepUNet(**generator_config)
        pipeline = OneStepPipeline(autoencoder, released.codec, generator, name=name)

        vae_state = autoencoder.state_dict()
        adapters = {
            m: layer.scale for m, layer in released.generator.unet.named_modules() if isinstance(layer, LoRALayer)
        }
        sources: dict[str, Callable[[str], torch.Tensor]] = {
            "autoencoder.": vae_state.__getitem__,
            "codec.": lambda key: codec_file.get_tensor(our_key_to_reference(key)),
            "generator.": lambda key: _generator_tensor(unet_file, key, adapters, merge=not keep_lora),
        }

        def tensor(key: str) -> torch.Tensor:
            prefix = next(p for p in sources if key.startswith(p))
            return sources[prefix](key[len(prefix) :])

        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        specs = {k: (tuple(v.shape), v.dtype) for k, v in pipeline.state_dict().items()}
        write_safetensors_streaming(output / WEIGHTS_NAME, specs, tensor)
    write_atomic(output / CONFIG_NAME, config_bytes(pipeline))
    return output


def _generator_tensor(file: Any, key: str, adapters: dict[str, float], merge: bool) -> torch.Tensor:
    """Our generator key -> its tensor from the released UNet file, merging W + scale * B A if asked."""
    module, _, leaf = key.removeprefix("unet.").rpartition(".")
    if not merge or not key.startswith("unet.") or module not in adapters:
        return file.get_tensor(official_unet_key(key))
    base = file.get_tensor(f"{module}.base_layer.{leaf}").float()
    if leaf != "weight":
        return base
    a = file.get_tensor(f"{module}.lora_A.default.weight").float()
    b = file.get_tensor(f"{module}.lora_B.default.weight").float()
    return base + lora_delta(a, b, adapters[module])
