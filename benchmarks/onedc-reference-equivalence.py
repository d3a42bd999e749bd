"""OneDC against the public reference code, stage by stage, with the same random weights (not run by CI).

    python benchmarks/onedc-reference-equivalence.py --reference-src REF/src --reference-path LIBS[:LIBS2...] \
        [--size 768x512] [--z-only-size 500x350] [--work DIR] [--out benchmarks/onedc-reference-equivalence.json]

REF is a checkout of github.com/onedc-codec/onedc (c52af53) with its C++ coder built into REF/src/modules/entropy
(see benchmarks/onedc-bin-vectors.py). LIBS holds the reference's pinned libraries (diffusers 0.32.1, peft 0.14.0,
vector-quantize-pytorch 1.21.2, transformers 4.48.0 + tokenizers, omegaconf 2.3.0, einx, frozendict, huggingface_hub
0.27.1), installed with `pip install --target LIBS --no-deps`: they shadow onestep's own versions only in the
reference's process.

Three processes, so that only one full model is in memory at a time (each needs about 6 GB at 768x512):
  1. reference: its own classes (`SD15_1step_codec_stage1` with `config_inference.yaml`, and the z-only variant's
     codec on the same weights) built on CPU from `--seed`, with non-zero LoRA B and perturbed norms so that
     every weight matters; writes the released layout (model.safetensors, model_1.safetensors; the VAE as one
     diffusers safetensors file), runs its `encode` -> `.bin` -> `decode`, and z-only `forward`, recording
     every stage;
  2. onestep: `onestep import onedc` of those files, then the same image through the same stages;
  3. compare, write the JSON.

What was changed in the reference for this (everything else runs as released):
  - no hub access: `from_pretrained` of the SD1.5 UNet, the SD2.1 VAE, TAESD and the DDIM scheduler builds
    each from its published config (random weights; the VAE is then put in eval mode, as `from_pretrained`
    leaves it: its windowed attention depends on it);
  - modules imported only for training, logging or metrics are stubs that raise if used (torchvision,
    wandb, imageio, pytorch_msssim's MS_SSIM);
  - the VAE encoder takes the posterior's mode, not a sample (onestep's choice, digest §12.2), so that both
    sides code the same latent;
  - the accelerator is a stand-in with `device = cpu` and `prepare = identity`.
On CPU the reference's `autocast("cuda")` does nothing: both run in float32.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import struct
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / ".." / "shared" / "data" / "kodak" / "kodim23.png"
SD21_VAE = {
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return height, width


def load_image(size: tuple[int, int]) -> torch.Tensor:
    """uint8 3 x H x W: the top-left crop of a Kodak image."""
    from PIL import Image

    with Image.open(IMAGE) as image:
        pixels = np.asarray(image.convert("RGB"))
    height, width = size
    if pixels.shape[0] < height or pixels.shape[1] < width:
        raise SystemExit(f"{IMAGE} is smaller than {width}x{height}")
    return torch.from_numpy(pixels[:height, :width].copy()).permute(2, 0, 1).contiguous()


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """torchvision's save_image of clamp(x) * 0.5 + 0.5 (the reference's PNGs)."""
    return (image.clamp(-1, 1) * 0.5 + 0.5).mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


class Recorder:
    """Forward hooks that keep each named module's output (first call per phase)."""

    def __init__(self) -> None:
        self.phase = ""
        self.tensors: dict[str, torch.Tensor] = {}

    def put(self, name: str, value: torch.Tensor) -> None:
        self.tensors.setdefault(f"{self.phase}/{name}", value.detach().float().cpu().clone())

    def hook(self, module: torch.nn.Module, names: tuple[str, ...]) -> None:
        def record(_module: Any, _inputs: Any, output: Any) -> None:
            outputs = output if isinstance(output, (tuple, list)) else (output,)
            for name, value in zip(names, outputs):
                if name and isinstance(value, torch.Tensor):
                    self.put(name, value)

        module.register_forward_hook(record)


# --- 1. the reference ------------------------------------------------------------------------------------


def _stub(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def _install_stubs() -> None:
    def unused(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a training/metrics dependency stubbed out by the equivalence harness was called")

    _stub("pytorch_msssim", MS_SSIM=lambda *a, **k: torch.nn.Identity())  # built by CompressionModel, unused
    vision = _stub("torchvision")
    vision.models = _stub("torchvision.models")
    vision.utils = _stub("torchvision.utils", make_grid=unused, save_image=unused)
    vision.transforms = _stub("torchvision.transforms")
    vision.transforms.functional = _stub("torchvision.transforms.functional", resize=unused)
    _stub("wandb")
    _stub("imageio").v2 = _stub("imageio.v2")


def _perturb(generator: torch.Generator, *modules: torch.nn.Module) -> None:
    """Non-zero LoRA B (peft starts them at zero) and norms away from (1, 0), so that every tensor matters."""
    with torch.no_grad():
        for module in modules:
            for name, p in module.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
            for m in module.modules():
                if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)) and m.weight is not None:
                    m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=generator))
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=generator))


def build_reference(reference_src: Path, seed: int, recorder: Recorder | None = None) -> Any:
    """The reference's `SD15_1step_codec_stage1` as its inference.py builds it (with the changes listed at the
    top), from seeded random weights, perturbed; `recorder` gets the latent and x0 of every call."""
    sys.path.insert(0, str(reference_src))
    _install_stubs()
    import models.sd15_onedc_codec_stage1.model_sd15_with_codec_stage1 as stage1
    import models.sd15_onedc_codec_z_only.model_sd15_with_codec_stage1 as z_only
    from diffusers import AutoencoderTiny, DDIMScheduler, UNet2DConditionModel
    from modules.vae.autoencoders_patch_attn import AutoencoderKL_patch_attn
    from omegaconf import OmegaConf

    sd15 = json.loads((ROOT / "src" / "onestep" / "configs" / "sd15_unet.json").read_text())
    UNet2DConditionModel.from_pretrained = classmethod(lambda cls, *a, **k: cls(**sd15))
    AutoencoderKL_patch_attn.from_pretrained = classmethod(lambda cls, *a, **k: cls(**SD21_VAE).eval())
    AutoencoderTiny.from_pretrained = classmethod(lambda cls, *a, **k: cls())
    DDIMScheduler.from_pretrained = classmethod(
        lambda cls, *a, **k: cls(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    )

    def vae_encode_image(self: Any, image: torch.Tensor) -> torch.Tensor:  # the posterior's mode (see above)
        latent = self.vae_large.encode(image).latent_dist.mode() * self.vae_large.config.scaling_factor
        if recorder is not None:
            recorder.put("latent", latent)
        return latent.float().detach()

    x0_from_noise = stage1.get_x0_from_noise

    def get_x0_from_noise(*a: Any) -> torch.Tensor:
        x0 = x0_from_noise(*a)
        if recorder is not None:
            recorder.put("x0", x0.float())
        return x0

    for module in (stage1, z_only):
        module.SD15_1step_codec_stage1.vae_encode_image = torch.no_grad()(vae_encode_image)
        module.get_x0_from_noise = get_x0_from_noise

    config = OmegaConf.load(reference_src / "config_inference.yaml")
    for key in ("unet_ckpt", "codec_ckpt", "vae_ckpt", "control_ckpt", "unet_ckpt_lora", "codeformer_ckpt"):
        config[key] = None
    config.use_codeformer = False
    accelerator = types.SimpleNamespace(device=torch.device("cpu"), prepare=lambda m: m, print=print)
    torch.manual_seed(seed)
    model = stage1.SD15_1step_codec_stage1(config, accelerator)
    _perturb(torch.Generator().manual_seed(seed + 1), model.feedforward_model, model.codec_model, model.vae_large)
    model.prepare()
    model.codec_model.update(force=True)
    model.eval()
    return model


def read_bin_size(path: Path) -> tuple[int, int]:
    """(height, width) from a .bin file's header."""
    height, width = struct.unpack(">II", path.read_bytes()[:8])
    return height, width


def reference_phase(args: argparse.Namespace) -> None:
    recorder = Recorder()
    started = time.perf_counter()
    model = build_reference(args.reference_src, args.seed, recorder)
    print(f"reference built in {time.perf_counter() - started:.0f} s", flush=True)
    import models.sd15_onedc_codec_z_only.model_sd15_with_codec_stage1 as z_only
    from models.sd15_onedc_codec_z_only.codec_module import IntraNoAR as ZOnlyCodec
    from safetensors.torch import save_file

    work = args.work
    (work / "checkpoint").mkdir(parents=True, exist_ok=True)
    for file, module in (("model.safetensors", model.feedforward_model), ("model_1.safetensors", model.codec_model)):
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, work / "checkpoint" / file)
    save_file({k: v.contiguous() for k, v in model.vae_large.state_dict().items()}, work / "vae.safetensors")

    codec = model.codec_model
    recorder.hook(codec.enc, ("y", "semantic"))
    recorder.hook(codec.hyper_enc, ("z",))
    recorder.hook(codec.z_vq, ("z_hat", "fsq_indices"))
    recorder.hook(codec.hyper_dec, ("entropy_feature", "z_semantic"))
    recorder.hook(codec.y_prior_fusion, ("entropy_params",))
    recorder.hook(codec.semantic_adaptor, ("tokens",))
    recorder.hook(codec.dec, ("features",))
    recorder.hook(model.feedforward_model, ("epsilon", "x_t"))

    image = load_image(args.size)[None].float() / 255 * 2 - 1
    bin_path = work / "reference.bin"
    timings = {}
    with torch.no_grad():
        recorder.phase = "encode"
        started = time.perf_counter()
        model.encode(image, fp=str(bin_path))
        timings["encode_s"] = time.perf_counter() - started
        recorder.phase = "decode"
        started = time.perf_counter()
        pixels = model.decode(fp=str(bin_path))
        timings["decode_s"] = time.perf_counter() - started
        recorder.put("pixels", pixels)

        # z-only: the variant's codec on the same weights, the rest shared; reflect padding and `forward`
        z_codec = ZOnlyCodec(4, 320, 512, 128, [512, 768, 768], [4] * 7)  # config_inference.yaml's codec
        z_codec.load_state_dict(codec.state_dict(), strict=True)
        z_codec.update(force=True)
        z_model = z_only.SD15_1step_codec_stage1.__new__(z_only.SD15_1step_codec_stage1)
        z_model.__dict__.update(model.__dict__)
        z_model._modules = {**model._modules, "codec_model": z_codec.eval()}
        del model, codec
        for name, outputs in (("enc", ("y", "semantic")), ("hyper_enc", ("z",)), ("z_vq", ("z_hat", "fsq_indices"))):
            recorder.hook(getattr(z_codec, name), outputs)
        recorder.hook(z_codec.y_prior_fusion, ("entropy_params",))
        recorder.hook(z_codec.semantic_adaptor, ("tokens",))
        recorder.hook(z_codec.dec, ("features",))  # the UNet keeps its hook from above
        recorder.phase = "z-only"
        z_image = load_image(args.z_only_size)[None].float() / 255 * 2 - 1
        h, w = z_image.shape[-2:]
        padded = torch.nn.functional.pad(z_image, (0, (64 - w % 64) % 64, 0, (64 - h % 64) % 64), mode="reflect")
        started = time.perf_counter()
        _, z_pixels = z_model.forward(padded)
        timings["z_only_forward_s"] = time.perf_counter() - started
        recorder.put("pixels", z_pixels[:, :, :h, :w])
    torch.save(recorder.tensors, work / "reference-stages.pt")
    (work / "reference-timings.json").write_text(json.dumps(timings))


# --- 2. onestep ------------------------------------------------------------------------------------------


def onestep_phase(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from onestep.methods.onedc.bin_format import read_bin, write_bin
    from onestep.methods.onedc.codec import REFERENCE_MODE
    from onestep.methods.onedc.importer import import_onedc
    from onestep.methods.pipeline import OneStepPipeline, deterministic, pad_image

    work = args.work
    started = time.perf_counter()
    folder = work / ("onestep-model-lora" if args.keep_lora else "onestep-model")
    if not (args.reuse and (folder / "model.safetensors").is_file()):
        import_onedc(work / "checkpoint", work / "vae.safetensors", folder, keep_lora=args.keep_lora)
    model = OneStepPipeline.from_pretrained(folder).eval()
    timings = {"import_and_load_s": time.perf_counter() - started}
    recorder = Recorder()
    codec, generator = model.codec, model.generator
    recorder.hook(codec.encoder, ("y", "semantic"))
    recorder.hook(codec.hyper_encoder, ("z",))
    recorder.hook(codec.fsq, ("z_hat", "fsq_indices"))
    recorder.hook(codec.hyper_decoder, ("entropy_feature", "z_semantic"))
    recorder.hook(codec.prior.fusion, ("entropy_params",))
    recorder.hook(codec.semantic, ("tokens",))
    recorder.hook(codec.decoder, ("features",))
    recorder.hook(generator.unet, ("epsilon",))
    recorder.hook(generator.vae_reduction, ("x_t",))
    recorder.hook(generator, ("x0",))
    recorder.hook(model.autoencoder.vae.decoder, ("padded_pixels",))  # the pipeline's own decode, uncropped

    def latent_of(image: torch.Tensor, mode: str) -> None:
        x = pad_image(image[None].float() / 255 * 2 - 1, model.pad_multiple, codec.pad_mode(mode))
        with torch.no_grad(), deterministic():
            recorder.put("latent", model.encode(x))

    def crop(phase: str, image: torch.Tensor) -> None:
        padded = recorder.tensors.pop(f"{phase}/padded_pixels")
        recorder.tensors[f"{phase}/pixels"] = padded[:, :, : image.shape[-2], : image.shape[-1]]

    image = load_image(args.size)
    reference_bin = (work / "reference.bin").read_bytes()
    recorder.phase = "encode"
    latent_of(image, REFERENCE_MODE)
    started = time.perf_counter()
    ours_bin = write_bin(model.compress(image, mode=REFERENCE_MODE))
    timings["encode_s"] = time.perf_counter() - started
    recorder.phase = "decode"
    started = time.perf_counter()
    pixels = model.decompress(read_bin(reference_bin))  # the user's path: onestep decompress --from onedc-bin
    timings["decode_s"] = time.perf_counter() - started
    crop("decode", image)
    recorder.tensors["pipeline/pixels_uint8"] = pixels.float()

    recorder.phase = "z-only"
    z_image = load_image(args.z_only_size)
    latent_of(z_image, "z-only")
    model.compress_and_reconstruct(z_image, mode="z-only")
    crop("z-only", z_image)
    torch.save(recorder.tensors, work / "onestep-stages.pt")
    (work / "onestep.bin").write_bytes(ours_bin)
    (work / "onestep-timings.json").write_text(json.dumps(timings))


# --- 3. compare ------------------------------------------------------------------------------------------


def compare(args: argparse.Namespace) -> dict[str, Any]:
    work = args.work
    reference = torch.load(work / "reference-stages.pt", weights_only=True)
    ours = torch.load(work / "onestep-stages.pt", weights_only=True)
    stages: dict[str, Any] = {}
    for key, ref in reference.items():
        if key not in ours:
            stages[key] = {"missing_in_onestep": True}
            continue
        mine = ours[key]
        entry: dict[str, Any] = {"shape": list(ref.shape)}
        if tuple(mine.shape) != tuple(ref.shape):
            entry["onestep_shape"] = list(mine.shape)
            stages[key] = entry
            continue
        diff = (mine - ref).abs()
        entry["max_abs_diff"] = float(diff.max())
        entry["reference_max_abs"] = float(ref.abs().max())
        if key.endswith("fsq_indices"):
            entry["different"] = int((diff > 0).sum())
        if key.endswith("/pixels"):
            grey = (to_uint8(mine).int() - to_uint8(ref).int()).abs()
            entry["grey_levels_max_diff"] = int(grey.max())
            entry["grey_levels_differing"] = int((grey > 0).sum())
            entry["values"] = grey.numel()
            entry["unclamped_fraction"] = float((ref.abs() < 1).float().mean())
        stages[key] = entry
    reference_pixels = to_uint8(reference["decode/pixels"])[0].int()
    user = (ours["pipeline/pixels_uint8"].int() - reference_pixels).abs()
    reference_bin, ours_bin = (work / "reference.bin").read_bytes(), (work / "onestep.bin").read_bytes()
    return {
        "bin": {
            "reference_bytes": len(reference_bin),
            "onestep_bytes": len(ours_bin),
            "byte_identical": reference_bin == ours_bin,
        },
        "decompress_of_reference_bin_vs_reference_png": {
            "grey_levels_max_diff": int(user.max()),
            "grey_levels_differing": int((user > 0).sum()),
        },
        "stages": stages,
        "timings_reference": json.loads((work / "reference-timings.json").read_text()),
        "timings_onestep": json.loads((work / "onestep-timings.json").read_text()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-src", type=Path, required=True)
    parser.add_argument("--reference-path", default="", help="the reference's libraries (os.pathsep-separated)")
    parser.add_argument("--size", type=parse_size, default=(512, 768), help="WxH of the normal-mode crop")
    parser.add_argument("--z-only-size", type=parse_size, default=(350, 500), help="WxH, not a multiple of 64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/onedc-equivalence"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "onedc-reference-equivalence.json")
    parser.add_argument("--reuse", action="store_true", help="keep the work folder's reference run and import")
    parser.add_argument("--keep-lora", action="store_true", help="import with the adapters unmerged, as peft runs them")
    parser.add_argument("--phase", choices=("reference", "onestep"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.phase == "reference":
        return reference_phase(args)
    if args.phase == "onestep":
        return onestep_phase(args)
    args.work.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, __file__, *sys.argv[1:]]
    reference_env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [args.reference_path]))}
    if not (args.reuse and (args.work / "reference-stages.pt").is_file()):
        subprocess.run([*argv, "--phase", "reference"], check=True, env=reference_env)
    subprocess.run([*argv, "--phase", "onestep"], check=True)
    result = {
        "reference": "onedc-codec/onedc c52af53 (see this script's docstring for what was stubbed)",
        "image": f"{IMAGE.name}, top-left crops",
        "size": "x".join(map(str, args.size[::-1])),
        "z_only_size": "x".join(map(str, args.z_only_size[::-1])),
        "seed": args.seed,
        "threads": 1,
        "onestep_lora": "unmerged (--keep-lora)" if args.keep_lora else "merged into the base weights (default import)",
        "torch": torch.__version__,
        **compare(args),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "stages"}, indent=2))


if __name__ == "__main__":
    main()
