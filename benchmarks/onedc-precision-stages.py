"""OneDC's rendering precision stage by stage on Kodak images: which stage's bfloat16 moves the pixels, what each
stage costs, and whether any mix keeps every pixel within 2 grey levels of float32 (not run by CI).

    python benchmarks/onedc-precision-stages.py --work DIR [--images kodim01 kodim05 kodim23] [--threads 1] \
        [--diagnostics] [--out benchmarks/onedc-precision-stages.json]

DIR is the work folder of a benchmarks/onedc-reference-equivalence.py run: its `onestep-model/` is the full
OneDC with the harness's seeded random weights in the released layout (the released weights are not on this
machine, so the figures measure the arithmetic on these weights, not the look of the released model). Each
image (768x512) is compressed once; the codec's output (float32, as in every mode) is then rendered by each
pairing of a generator variant and a VAE-decoder variant, the pairings alternating within each image so that
their times see the same machine load. Recorded per image and pairing: the generator's x0 and the pixels
against float32's (max and share of values more than 1 and 2 grey levels off) and each stage's wall time.

Variants (one per stage, combined as `unet/vae`):
- `float32`; `bfloat16`: the library's `set_compute_dtype` / `set_decoder_dtype` (`--dtype bfloat16`);
- `bf16-f32-activations`: only the convolutions and linear layers compute in bfloat16 (their inputs rounded,
  their outputs cast back); norms, attention softmax, residual sums stay float32 (autocast-like);
- `--diagnostics` (first image only): `weights-rounded` (every conv/linear weight rounded to bfloat16,
  float32 arithmetic: the floor of any mode that stores bfloat16 weights), for the VAE decoder also
  `inputs-rounded` (their inputs rounded, float32 weights) and one level at a time in bfloat16 (the rest
  float32). About 12 GB of memory with them (a float32 copy of the UNet).

First, for `float32` and `bfloat16`, a fresh process loads the model for decoding only and decodes one
stream (benchmarks/onedc-speed-side-by-side.py's decoder worker): its peak RSS (measured before this process
loads anything: a child's peak RSS counts its parent's at the fork).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import torch
from onedc_run_info import run_info
from torch import nn

from onestep.images import read_image
from onestep.methods.pipeline import OneStepPipeline, deterministic, padded_size, rendering, to_uint8
from onestep.nn.precision import cast_inputs, to_compute_dtype

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT / ".." / "shared" / "data" / "kodak"
BF16 = torch.bfloat16
LINEAR = (nn.Conv2d, nn.Linear)


def _cast_back(_: nn.Module, __: object, output: torch.Tensor) -> torch.Tensor:
    return output.float()


def bf16_layers(root: nn.Module, skip: tuple[nn.Module, ...] = ()) -> None:
    """Each conv/linear layer under `root` (except `skip`) in bfloat16 with its input cast to bfloat16 and its
    output back to float32; everything between them stays float32."""
    for layer in [m for m in root.modules() if isinstance(m, LINEAR) and m not in skip]:
        to_compute_dtype(layer, BF16)
        cast_inputs(layer, BF16)
        layer.register_forward_hook(_cast_back)


def bf16_block(block: nn.Module) -> None:
    """A whole block in bfloat16 (channels-last), its input cast to bfloat16 and its output back to float32."""
    to_compute_dtype(block, BF16)
    cast_inputs(block, BF16)
    block.register_forward_hook(_cast_back)


def round_weights(root: nn.Module) -> None:
    for layer in root.modules():
        if isinstance(layer, LINEAR):
            layer.weight.data = layer.weight.data.to(BF16).float()


def round_inputs(root: nn.Module) -> None:
    for layer in root.modules():
        if isinstance(layer, LINEAR):
            layer.register_forward_pre_hook(lambda _, args: tuple(a.to(BF16).float() for a in args))


def unet_variants() -> dict[str, Callable[[nn.Module], None]]:
    def layers(g: nn.Module) -> None:  # conv_in/conv_out float32, as the library's bfloat16 keeps them
        bf16_layers(g.unet, skip=(g.unet.conv_in, g.unet.conv_out))

    return {
        "float32": lambda g: None,
        "bfloat16": lambda g: g.set_compute_dtype(BF16),
        "bf16-f32-activations": layers,
        "weights-rounded": lambda g: round_weights(g.unet),
    }


def vae_variants() -> dict[str, Callable[[nn.Module], None]]:
    def layers(a: nn.Module) -> None:
        decoder = a.vae.decoder
        bf16_layers(decoder, skip=(decoder.conv_in, decoder.conv_out))

    variants = {
        "float32": lambda a: None,
        "bfloat16": lambda a: a.set_decoder_dtype(BF16),
        "bf16-f32-activations": layers,
        "weights-rounded": lambda a: round_weights(a.vae.decoder),
        "inputs-rounded": lambda a: round_inputs(a.vae.decoder),
        "only-mid+up0-bf16": lambda a: [bf16_block(b) for b in (a.vae.decoder.mid_block, a.vae.decoder.up_blocks[0])],
    }
    for level in (1, 2, 3):
        variants[f"only-up{level}-bf16"] = lambda a, i=level: bf16_block(a.vae.decoder.up_blocks[i])
    return variants


MAIN = ["float32/float32", "bfloat16/float32", "float32/bfloat16", "bfloat16/bfloat16"]
MAIN += ["bf16-f32-activations/bf16-f32-activations"]
DIAGNOSTICS = ["weights-rounded/float32", "float32/weights-rounded"]
DIAGNOSTICS += ["float32/inputs-rounded", "float32/only-mid+up0-bf16"]
DIAGNOSTICS += [f"float32/only-up{level}-bf16" for level in (1, 2, 3)]


def compare(x0: torch.Tensor, pixels: torch.Tensor | None, ref_x0: torch.Tensor, ref: torch.Tensor) -> dict:
    out = {
        "x0_max_abs_diff": (x0 - ref_x0).abs().max().item(),
        "x0_rms_diff": (x0 - ref_x0).pow(2).mean().sqrt().item(),
    }
    if pixels is not None:
        levels = (pixels.int() - ref.int()).abs()
        out.update(
            grey_levels_max_diff=levels.max().item(),
            grey_levels_mean_diff=levels.float().mean().item(),
            share_over_1_level=(levels > 1).float().mean().item(),
            share_over_2_levels=(levels > 2).float().mean().item(),
        )
    return out


def fresh_decode_rss(work: Path, dtype: str, threads: int) -> dict:
    """Peak RSS of a fresh process that loads the model for decoding only and decodes one stream."""
    script = ROOT / "benchmarks" / "onedc-speed-side-by-side.py"
    command = [sys.executable, str(script), "--reference-src", ".", "--work", str(work)]
    command += ["--worker", "onestep-decoder", "--threads", str(threads), "--dtype", dtype]
    line = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True).stdout
    answer = json.loads(line.splitlines()[-1])
    return {"peak_rss_gib": round(answer["peak_rss_gb"], 2), "decode_s": answer["wall_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/onedc-equivalence"))
    parser.add_argument("--images", nargs="+", default=["kodim01", "kodim05", "kodim23"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--diagnostics", action="store_true", help="the rounding / per-level variants (image 1)")
    parser.add_argument("--no-rss", action="store_true", help="skip the fresh-process peak-RSS decodes")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "onedc-precision-stages.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # first, while this process is small: a child's ru_maxrss starts from its parent's at fork
    rss = (
        None
        if args.no_rss
        else {dtype: fresh_decode_rss(args.work, dtype, args.threads) for dtype in ("float32", "bfloat16")}
    )
    model = OneStepPipeline.from_pretrained(args.work / "onestep-model").eval()
    pairings = MAIN + (DIAGNOSTICS if args.diagnostics else [])
    generators, decoders = {}, {}
    for pairing in pairings:  # each variant built once, from the float32 model's copy
        unet, vae = pairing.split("/")
        stages = (
            (unet, unet_variants(), generators, model.generator),
            (vae, vae_variants(), decoders, model.autoencoder),
        )
        for name, table, store, part in stages:
            if name not in store:
                store[name] = part if name == "float32" else copy.deepcopy(part).eval()
                table[name](store[name])
    load_before = os.getloadavg()[0]
    per_image: dict[str, dict] = {}
    for index, image_name in enumerate(args.images):
        image = read_image(KODAK / f"{image_name}.png")
        with torch.no_grad():
            encoded = model.compress(image)
            size = padded_size(encoded.height, encoded.width, model.pad_multiple)
            with deterministic(model.device):
                symbols = model.codec.read_sections(encoded.sections, size, mode=encoded.mode)
            with rendering(model.device):
                out = model.codec.finish(symbols)
                context = model.conditioning(out)
        x0s: dict[str, torch.Tensor] = {}
        rows = per_image[image_name] = {}
        for pairing in pairings if index == 0 else MAIN:
            unet, vae = pairing.split("/")
            row = rows[pairing] = {}
            with torch.no_grad():
                if unet not in x0s:
                    start = time.perf_counter()
                    x0s[unet] = generators[unet](out.features, context).float()
                    row["unet_s"] = time.perf_counter() - start
                start = time.perf_counter()
                pixels = to_uint8(decoders[vae].decode(x0s[unet])[0, :, : encoded.height, : encoded.width])
                row["vae_s"] = time.perf_counter() - start
            if pairing == "float32/float32":
                reference = pixels
            row.update(compare(x0s[unet], pixels, x0s["float32"], reference))
            print(image_name, pairing, json.dumps(row), flush=True)
    modes: dict[str, dict] = {}
    for pairing in pairings:
        rows = [image_rows[pairing] for image_rows in per_image.values() if pairing in image_rows]
        summary = modes[pairing] = {"images": len(rows)}
        for key in ("grey_levels_max_diff", "share_over_2_levels", "x0_rms_diff"):
            summary[f"worst_{key}"] = max(r[key] for r in rows)
        summary["every_value_within_2_levels"] = summary["worst_grey_levels_max_diff"] <= 2
        for key in ("unet_s", "vae_s"):
            times = [r[key] for r in rows if key in r]
            if times:
                summary[f"median_{key}"] = median(times)
    result = {
        **run_info(
            "OneDC rendering precision per stage (unet/vae variant pairings) vs float32, harness random weights",
            args.work,
            args.threads,
            "renders",
            load_before,
        ),
        "timing_note": "unet_s is recorded by the first pairing that uses a generator variant on an image; "
        "vae_s by every pairing; pairings alternate within each image",
        "modes": modes,
        "per_image": per_image,
    }
    if rss is not None:
        result["decode_only_fresh_process"] = rss
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(modes, indent=2))


if __name__ == "__main__":
    main()
