"""Equivalence harness: runs the public OSDiff code (GitHub cheesejiang/OSDiff) next to ours. Not run by CI.

    python -m onestep.methods.osdiff.reference_harness keys REF_DIR -o benchmarks/osdiff-reference-keys.json
    python -m onestep.methods.osdiff.reference_harness compare REF_DIR --work DIR -o benchmarks/osdiff-equivalence.json

REF_DIR is a checkout of the reference; run this in a throwaway environment outside the repository that has
torch, diffusers, einops, omegaconf and compressai 1.2.4 (the reference's pin) besides onestep. The reference
imports much that only its training and metrics use; `install_stubs` puts empty modules in their place before
importing it. Every patch (nothing else of the reference is changed):

    lpips, pyiqa, thop, cv2, kornia, transformers   metrics / logging / FLOP counting: empty modules
    pytorch_lightning                               training: `LightningModule` = nn.Module, `rank_zero_only`
                                                    = identity, `EPOCH_OUTPUT` = list
    torchvision                                     compressai's dataset registry and ldm's `make_grid` (logging)
    open_clip                                       the text tower is built from ldm's code paths by hand instead
                                                    (`reference_text_embedding`: the same calls as
                                                    `FrozenOpenCLIPEmbedder.encode_with_transformer`)
    torch.utils.tensorboard.SummaryWriter          logging: a no-op class (only built by `OSDiff.__init__`)

`keys` builds the reference's control module (`CDDM`, minus its copy of the base UNet that is not part of
the checkpoint), `LFGCM`, `GuidanceModel` and ldm's SD-2.1 `UNetModel` and `AutoencoderKL` on the meta
device and writes every state-dict key, shape and parameter count. `compare` builds the full reference at
random weights, runs it on an image as its `inference.py` does (float32, CPU, one thread), writes its weights
in the release layout (an ldm `v2-1_512-ema-pruned.ckpt` and a Lightning `lambda_1.ckpt`), imports them with
`onestep import osdiff`, runs ours on the same image and inputs, and writes max abs differences per stage.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

STUBBED = ("lpips", "pyiqa", "thop", "cv2", "kornia", "transformers", "open_clip", "torchvision", "torchvision.utils",
           "torchvision.transforms", "pytorch_lightning", "pytorch_lightning.utilities",
           "pytorch_lightning.utilities.types", "pytorch_lightning.utilities.distributed")  # fmt: skip


def _anything(*args: Any, **kwargs: Any) -> Any:
    return None


def _stub_attribute(attribute: str) -> Any:
    if attribute.startswith("__"):  # module machinery (inspect, importlib) must see a plain module
        raise AttributeError(attribute)
    return _anything


def install_stubs(reference: Path) -> None:
    """Empty modules for what the reference imports only for training, logging and metrics; then make the
    reference importable."""
    import importlib.machinery

    for name in STUBBED:
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # found by importlib.util.find_spec
        module.__getattr__ = _stub_attribute  # type: ignore[method-assign]
        sys.modules[name] = module
    lightning = sys.modules["pytorch_lightning"]
    lightning.LightningModule = nn.Module  # type: ignore[attr-defined]
    lightning.seed_everything = _anything  # type: ignore[attr-defined]
    sys.modules["pytorch_lightning.utilities.distributed"].rank_zero_only = lambda f: f  # type: ignore[attr-defined]
    sys.modules["pytorch_lightning.utilities.types"].EPOCH_OUTPUT = list  # type: ignore[attr-defined]
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]  # type: ignore[attr-defined]
    sys.modules["torchvision"].utils = sys.modules["torchvision.utils"]  # type: ignore[attr-defined]
    tensorboard = types.ModuleType("torch.utils.tensorboard")
    tensorboard.SummaryWriter = type("SummaryWriter", (), {"__init__": _anything})  # type: ignore[attr-defined]
    sys.modules["torch.utils.tensorboard"] = tensorboard
    sys.path.insert(0, str(reference))


def reference_config(reference: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(reference / "configs/model/osdiff.yaml"))["params"]  # type: ignore[index]


def build_reference_parts(reference: Path, discriminator: bool = True) -> dict[str, nn.Module]:
    """The reference's trainable modules (control module, LFGCM, discriminator) with its config."""
    from model.lfgcm import LFGCM
    from model.osdiff import CDDM, GuidanceModel

    params = reference_config(reference)
    control = CDDM(**params["control_stage_config"]["params"])
    parts = {"control_model": control, "preprocess_model": LFGCM(**params["preprocess_config"]["params"])}
    if discriminator:
        parts["guidance_model"] = GuidanceModel()
    return parts


def _keys(module: nn.Module, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    state = {k: list(v.shape) for k, v in module.state_dict().items() if not k.startswith(skip)}
    parameters = sum(p.numel() for n, p in module.named_parameters() if not n.startswith(skip))
    return {"parameters": parameters, "keys": state}


def dump_keys(reference: Path, output: Path) -> None:
    install_stubs(reference)
    from ldm.models.autoencoder import AutoencoderKL
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    params = reference_config(reference)
    with torch.device("meta"):
        parts = build_reference_parts(reference)
        parts["model.diffusion_model"] = UNetModel(**params["unet_config"]["params"])
        parts["first_stage_model"] = AutoencoderKL(**params["first_stage_config"]["params"])
    # CDDM builds a copy of the base UNet only to read its channel counts; it is dropped from the module
    # (`base_model` is a local), so `control_model.*` holds the control encoder and the zero convs.
    result = {
        "source": "github.com/cheesejiang/OSDiff, configs/model/osdiff.yaml",
        "compressai": __import__("compressai").__version__,
        "parts": {name: _keys(module) for name, module in parts.items()},
    }
    output.write_text(json.dumps(result, indent=1) + "\n")


# --- compare: the reference and our import of its weights, stage by stage ------------------------------


def _randomize(module: nn.Module, generator: torch.Generator) -> None:
    """Random weights with every zero-initialised layer (zero convs, ldm's zero_module outputs) made live, so
    that each stage is exercised; the entropy bottleneck keeps its own initialisation (a valid density)."""
    for name, p in module.named_parameters():
        if "entropy_bottleneck" in name:
            continue
        with torch.no_grad():
            if p.dim() > 1:
                p.normal_(0, 1 / p[0].numel() ** 0.5, generator=generator)
            elif name.endswith("weight"):  # norms
                p.copy_(1 + 0.05 * torch.randn(p.shape, generator=generator))
            else:
                p.normal_(0, 0.02, generator=generator)


class _Recorder:
    """Forward hooks on the entropy-parameter networks: their outputs in call order."""

    def __init__(self, prior: nn.Module) -> None:
        self.outputs: list[torch.Tensor] = []
        self.handles = [
            m.register_forward_hook(lambda _m, _i, out: self.outputs.append(out.detach().clone()))
            for group in (prior.entropy_parameters_anchor, prior.entropy_parameters_nonanchor)
            for m in group
        ]

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    from ..pipeline import to_uint8 as ours

    return ours(image)


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def run_reference(reference: Path, image: torch.Tensor, work: Path, seed: int) -> dict[str, Any]:
    """Build the reference at random weights, run it on `image` (1 x 3 x H x W in [0, 1]) as its inference.py
    does, write its weights in the release layout into `work`; returns every stage's output."""
    from types import SimpleNamespace

    from ldm.models.autoencoder import AutoencoderKL
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    from model.osdiff import OSDiff
    from model.spaced_sampler import SpacedSampler

    from .codec import latent_noise
    from .text import TextTower, empty_prompt_embedding

    params = reference_config(reference)
    generator = torch.Generator().manual_seed(seed)
    unet = UNetModel(**params["unet_config"]["params"]).eval()
    vae = AutoencoderKL(**params["first_stage_config"]["params"]).eval()
    parts = build_reference_parts(reference, discriminator=False)
    control, lfgcm = parts["control_model"].eval(), parts["preprocess_model"].eval()
    text = TextTower(width=1024, layers=24, heads=16)  # OpenCLIP ViT-H/14's text tower, random weights
    for module in (unet, vae, control, lfgcm, text):
        _randomize(module, generator)
    lfgcm.update(force=True)  # as inference.py's load: rebuild the CDF tables
    text_state = text.state_dict()
    context = empty_prompt_embedding(text_state)  # what FrozenOpenCLIPEmbedder("penultimate") gives for ""
    out: dict[str, Any] = {"context": context}
    with torch.no_grad():
        y0 = vae.encode(image * 2 - 1).mode() * params["scale_factor"]  # OSDiff.apply_condition_compress
        y = lfgcm.encoder(y0, None)
        z = lfgcm.hyper_enc(y, None)
        strings = lfgcm.compress(y0, None)
        recorder = _Recorder(lfgcm)
        captured: dict[str, torch.Tensor] = {}
        hook = lfgcm.decoder.register_forward_pre_hook(lambda _m, args: captured.update(y_hat=args[0].clone()))
        c_latent = lfgcm.decompress(strings["strings"], strings["shape"])  # OSDiff.apply_condition_decompress
        hook.remove()
        recorder.close()
        medians = lfgcm.entropy_bottleneck._get_medians().detach()
        out.update(y0=y0, y=y, z=z, z_symbols=torch.round(z - medians), y_hat=captured["y_hat"], c_latent=c_latent)
        out["entropy_parameters"] = recorder.outputs
        out["bytes"] = {"y": len(strings["strings"][0][0]), "z": len(strings["strings"][1][0])}
        x_t = latent_noise(seed, y0.shape, "cpu")
        model = SimpleNamespace(
            num_timesteps=1000,
            linear_start=params["linear_start"],
            linear_end=params["linear_end"],
            parameterization="eps",
            betas=torch.zeros(1),
            model=SimpleNamespace(diffusion_model=unet),
            control_model=control,
        )
        model.apply_model = lambda x, t, c: OSDiff.apply_model(model, x, t, c)
        cond = {"c_latent": [c_latent], "c_crossattn": [context]}
        t = torch.full((1,), 999, dtype=torch.long)
        out["epsilon"] = control(x=x_t, hint=c_latent, timesteps=t, context=context, base_model=unet)
        x0 = SpacedSampler(model, var_type="fixed_small").sample(1, tuple(y0.shape), cond, x_T=x_t)  # inference.py
        decoded = vae.decode(x0 / params["scale_factor"])  # decode_first_stage
        pixels = (((decoded + 1) / 2).clamp(0, 1) * 255).numpy().clip(0, 255).astype("uint8")  # inference.py
        out.update(x_t=x_t, x0=x0, decoded=decoded, pixels=torch.from_numpy(pixels[0]))  # 3 x H x W
    sd = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    sd.update({f"first_stage_model.{k}": v for k, v in vae.state_dict().items()})
    sd.update({f"cond_stage_model.model.{k}": v for k, v in text_state.items()})
    lightning = {f"control_model.{k}": v for k, v in control.state_dict().items()}
    lightning.update({f"preprocess_model.{k}": v for k, v in lfgcm.state_dict().items()})
    torch.save({"state_dict": sd}, work / "v2-1_512-ema-pruned.ckpt")
    torch.save(
        {"state_dict": lightning, "global_step": 0, "pytorch-lightning_version": "1.5.0"}, work / "lambda_1.ckpt"
    )
    return out


def run_ours(work: Path, image: torch.Tensor, ref: dict[str, Any]) -> dict[str, Any]:
    """Import the release written by `run_reference` and run every stage on the same inputs."""
    from ...bitstream import EncodedImage
    from ..pipeline import OneStepPipeline, deterministic
    from .importer import import_osdiff

    folder = import_osdiff(work / "v2-1_512-ema-pruned.ckpt", work / "lambda_1.ckpt", work / "model")
    pipeline = OneStepPipeline.from_pretrained(folder).eval()
    codec, generator = pipeline.codec, pipeline.generator
    x = image * 2 - 1
    out: dict[str, Any] = {"context": pipeline.conditioner.context}
    with torch.no_grad(), deterministic("cpu"):
        y0 = pipeline.encode(x)
        y, z = codec.analyse(None, y0)
        sections = codec.compress(None, y0)
        recorder = _Recorder(codec.prior)
        decoded = codec.decompress(sections, tuple(x.shape[-2:]))
        recorder.close()
        captured: dict[str, torch.Tensor] = {}
        hook = codec.synthesis.register_forward_pre_hook(lambda _m, args: captured.update(y_hat=args[0].clone()))
        codec.decompress(sections, tuple(x.shape[-2:]))
        hook.remove()
        out.update(y0=y0, y=y, z=z, z_symbols=torch.round(z - codec.z_model.medians().view(1, -1, 1, 1)))
        out.update(y_hat=captured["y_hat"], c_latent=decoded.extras["c_latent"], entropy_parameters=recorder.outputs)
        out["x_t"] = decoded.features[:, : generator.latent_channels]
        out["bytes"] = {k: len(v) for k, v in sections.items()}
        context = ref["context"]
        out["epsilon"] = generator.epsilon(ref["x_t"], ref["c_latent"], context)  # the reference's inputs
        out["x0"] = generator(torch.cat([ref["x_t"], ref["c_latent"]], dim=1), context)
        out["decoded"] = pipeline.autoencoder.decode(ref["x0"])
        stream = EncodedImage(sections, x.shape[-2], x.shape[-1], "normal")
        out["pixels"] = pipeline.decompress(stream)  # our whole decoder, from the stream; 3 x H x W
        out["pixels_same_x0"] = to_uint8(out["decoded"][0])
    return out


def compare(reference: Path, image_path: Path, size: int, work: Path, output: Path, seed: int) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    from . import importer  # noqa: F401 - ours (diffusers included) first, before the stubs stand in

    install_stubs(reference)
    work.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(Image.open(image_path).convert("RGB"))
    if size:
        pixels = pixels[:size, :size]
    if pixels.shape[0] % 64 or pixels.shape[1] % 64:
        raise SystemExit("the image's sides must be multiples of 64 (the reference pads with zeros, we replicate)")
    image = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
    saved = work / "reference_outputs.pt"
    if saved.is_file():  # a previous run's reference side (its release files are in `work` too)
        ref = torch.load(saved, weights_only=True)
    else:
        ref = run_reference(reference, image, work, seed)
        torch.save(ref, saved)
    ours = run_ours(work, image, ref)
    stages = {
        name: _max_abs(ref[name], ours[name])
        for name in ("context", "y0", "y", "z", "z_symbols", "y_hat", "c_latent", "x_t", "epsilon", "x0", "decoded")
    }
    parameters = [_max_abs(a, b) for a, b in zip(ref["entropy_parameters"], ours["entropy_parameters"], strict=True)]
    y_symbols_ref = ref["y_hat"]
    pixel_differences = {
        "whole_decoder_from_our_stream": ref["pixels"].int() - ours["pixels"].int(),
        "same_x0": ref["pixels"].int() - ours["pixels_same_x0"].int(),
        # the reference's float output rounded as we round (inference.py truncates: `.astype(np.uint8)`)
        "whole_decoder_vs_reference_rounded": to_uint8(ref["decoded"][0]).int() - ours["pixels"].int(),
    }
    result = {
        "reference": "github.com/cheesejiang/OSDiff " + _reference_commit(reference),
        "image": f"{image_path.name}, "
        + (f"top-left {size}x{size}" if size else f"whole, {pixels.shape[1]}x{pixels.shape[0]}"),
        "seed": seed,
        "weights": "random (normal, 1/sqrt(fan_in)); zero-initialised layers made non-zero",
        "numerics": "CPU, float32, 1 thread",
        "max_abs_difference": {**stages, "entropy_parameters": max(parameters)},
        "z_symbols_identical": bool(torch.equal(ref["z_symbols"], ours["z_symbols"])),
        "y_hat_max_abs_difference": _max_abs(y_symbols_ref, ours["y_hat"]),
        "pixels_max_grey_levels": {k: int(v.abs().max()) for k, v in pixel_differences.items()},
        "pixels_differing": {k: int((v != 0).sum()) for k, v in pixel_differences.items()},
        "pixel_values": int(ref["pixels"].numel()),
        "notes": NOTES,
        "bytes": {"reference": ref["bytes"], "ours": ours["bytes"]},
        "patches": list(STUBBED) + ["torch.utils.tensorboard"],
    }
    output.write_text(json.dumps(result, indent=1) + "\n")
    return result


NOTES = [
    "context: both sides use the embedding our text tower computes from the release's random text weights "
    "(open_clip is stubbed, so the reference's FrozenOpenCLIPEmbedder is not run); the tower itself is tested "
    "against a hand-written transformer in tests/test_osdiff_import.py",
    "y symbols: y_hat = symbols + means and the entropy parameters (means, scales) are equal to the bit, so equal "
    "y_hat means equal symbols; z symbols are compared directly (round(z - medians))",
    "y0, y, z, epsilon, decoded: ldm's attention and convolutions vs diffusers' (scaled_dot_product_attention), "
    "float32 rounding only; x0 = 14.65 x_t - 14.61 eps amplifies epsilon's difference (float64 here, the "
    "sampler's float32 coefficients there)",
    "pixels: inference.py converts with `(x * 255).numpy().clip(0, 255).astype(np.uint8)`, which truncates; we "
    "round (to_uint8). Rounding the reference's float output the same way, the values that still differ (by 1) "
    "are those whose float values, 1e-6 apart, fall on either side of a rounding boundary",
    "bytes: different entropy coders (CompressAI rANS there, constriction here) on the same symbols; ours "
    "also carries the 4-byte seed",
]


def _reference_commit(reference: Path) -> str:
    import subprocess

    done = subprocess.run(["git", "-C", str(reference), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "(not a git checkout: commit not recorded)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys", help="state-dict keys, shapes and parameter counts of the reference")
    keys.add_argument("reference", type=Path)
    keys.add_argument("-o", "--output", type=Path, required=True)
    comparison = commands.add_parser("compare", help="run both on one image, stage by stage")
    comparison.add_argument("reference", type=Path)
    comparison.add_argument(
        "--image", type=Path, required=True, help="an image (e.g. ../shared/data/kodak/kodim23.png)"
    )
    comparison.add_argument(
        "--size", type=int, default=128, help="side of the top-left crop (a multiple of 64); 0: the whole image"
    )
    comparison.add_argument("--work", type=Path, required=True, help="folder for the release files (outside the repo)")
    comparison.add_argument("--seed", type=int, default=231)
    comparison.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.command == "keys":
        dump_keys(args.reference, args.output)
    else:
        result = compare(args.reference, args.image, args.size, args.work, args.output, args.seed)
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
