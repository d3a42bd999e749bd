"""The prepared GPU check for OneDC: one command, meant to finish in under 8 minutes on one GPU.

    python benchmarks/onedc-gpu-check.py                      # full size, cuda, writes benchmarks/onedc-gpu-check.json
    python benchmarks/onedc-gpu-check.py --arch tiny --device cpu --sizes 128x96 --out /tmp/check.json   # dry run

Full-size OneDC with seeded random weights (the UNet merged, as deployed), bfloat16 autocast (the entropy path
and the VAE stay float32, as the codec and the reference do):
  1. eager encode and decode at each size (768x512 and 1920x1080 by default): wall time (median of --repeats
     after one warm-up) and the allocator's peak memory; at the first size also float32, and the largest grey
     level difference between the two;
  2. cross-device streams at the first size: compress on the GPU and on the CPU (a float32 copy of the model),
     check the streams are byte-identical (so are the symbols) and decode each on the other device; the same
     stream check for the reference-rans mode (the `.bin` files);
  3. `torch.compile` of the generator and the VAE decoder ("compiled"), then with CUDA graphs
     (mode "reduce-overhead"), decode only, at each size while the time budget lasts.
Each step's failure is recorded in the JSON (its error), not fatal; the JSON is rewritten after every step,
so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from onestep.bench.pipeline import PeakMemory, machine_info  # noqa: E402
from onestep.methods.onedc.codec import REFERENCE_MODE  # noqa: E402
from onestep.methods.onedc.model import ARCHITECTURES  # noqa: E402
from onestep.methods.pipeline import OneStepPipeline  # noqa: E402


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """ "768x512,1920x1080" -> [(height, width), ...]."""
    sizes = []
    for item in text.split(","):
        width, height = (int(v) for v in item.lower().split("x"))
        sizes.append((height, width))
    return sizes


def test_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """uint8 3 x H x W: smooth colour ramps plus seeded noise."""
    generator = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, height).view(1, height, 1)
    xs = torch.linspace(0, 1, width).view(1, 1, width)
    base = torch.cat([xs * ys, xs.expand(1, height, width), ys.expand(1, height, width)])
    noise = torch.rand(3, height, width, generator=generator)
    return (255 * (0.8 * base + 0.2 * noise)).round().to(torch.uint8)


class Check:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = torch.device(args.device)
        self.started = time.perf_counter()
        self.report: dict[str, Any] = {
            "check": "onedc-gpu",
            "arch": args.arch,
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
            "torch": torch.__version__,
            "machine": machine_info(),
            "sizes": args.sizes,
            "repeats": args.repeats,
            "steps": {},
        }

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def save(self) -> None:
        self.report["elapsed_s"] = round(self.elapsed(), 1)
        self.args.out.write_text(json.dumps(self.report, indent=2) + "\n")

    def step(self, name: str, fn: Callable[[], dict[str, Any]], needs_s: float = 0.0) -> None:
        """Run one step unless the budget is spent; record its result or its error."""
        if self.elapsed() + needs_s > self.args.budget_s:
            self.report["steps"][name] = {"skipped": f"time budget ({self.args.budget_s} s) spent"}
        else:
            print(f"[{self.elapsed():6.1f} s] {name}", flush=True)
            try:
                self.report["steps"][name] = fn()
            except Exception as e:  # recorded, the check goes on
                self.report["steps"][name] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(-3)}
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        self.save()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> tuple[Any, dict[str, Any]]:
    """One warm-up call, then `repeats` timed calls; peak memory over the timed calls."""
    result = fn()
    sync(device)
    wall = []
    with PeakMemory(device) as peak:
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            sync(device)
            wall.append(time.perf_counter() - start)
    return result, {"wall_s": round(statistics.median(wall), 4), "wall_s_all": [round(w, 4) for w in wall]} | {
        k: v for k, v in peak.result().items()
    }


def autocast(device: torch.device, dtype: torch.dtype) -> Any:
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def coding(model: OneStepPipeline, image: torch.Tensor, dtype: torch.dtype, repeats: int) -> dict[str, Any]:
    device = model.device

    def encode() -> Any:
        with autocast(device, dtype):
            return model.compress(image)

    encoded, encode_stats = timed(encode, device, repeats)

    def decode() -> torch.Tensor:
        with autocast(device, dtype):
            return model.decompress(encoded)

    pixels, decode_stats = timed(decode, device, repeats)
    size = sum(len(s) for s in encoded.sections.values())
    return {
        "encode": encode_stats,
        "decode": decode_stats,
        "payload_bytes": size,
        "sections": {k: len(v) for k, v in encoded.sections.items()},
        "_encoded": encoded,
        "_pixels": pixels.cpu(),
    }


def public(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not k.startswith("_")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("768x512,1920x1080"), help="WxH,WxH,...")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=360.0, help="skip steps that would start after this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "onedc-gpu-check.json")
    args = parser.parse_args()
    check = Check(args)
    device, bf16 = check.device, torch.bfloat16
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here (use --device cpu for a dry run)")

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    cpu_model = ARCHITECTURES[args.arch](lora_rank=0).eval()
    model = copy.deepcopy(cpu_model).to(device) if device.type == "cuda" else cpu_model
    check.report["build_s"] = round(time.perf_counter() - start, 1)
    check.report["parameters"] = model.num_parameters()
    images = {size: test_image(*size, seed=args.seed) for size in args.sizes}
    label = {size: f"{size[1]}x{size[0]}" for size in args.sizes}
    first = args.sizes[0]
    eager: dict[tuple[int, int], dict[str, Any]] = {}

    def eager_step(size: tuple[int, int]) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            eager[size] = coding(model, images[size], bf16, args.repeats)
            result = public(eager[size])
            if size == first:
                float32 = coding(model, images[size], torch.float32, 1)
                result["float32"] = public(float32)
                grey = (float32["_pixels"].int() - eager[size]["_pixels"].int()).abs()
                result["bfloat16_vs_float32_max_grey_levels"] = int(grey.max())
            return result

        return run

    for size in args.sizes:
        check.step(f"eager/{label[size]}", eager_step(size))

    def cross_device() -> dict[str, Any]:
        if device.type != "cuda":
            return {"skipped": "one device only"}
        image = images[first]
        gpu_encoded = model.compress(image)
        cpu_encoded = cpu_model.compress(image)
        identical = {
            name: gpu_encoded.sections[name] == cpu_encoded.sections.get(name) for name in gpu_encoded.sections
        }
        result: dict[str, Any] = {"size": label[first], "streams_identical": identical}
        # the .bin files' mode (the reference's coder on channels-last entropy parameters): streams only
        gpu_bin, cpu_bin = model.compress(image, mode=REFERENCE_MODE), cpu_model.compress(image, mode=REFERENCE_MODE)
        result["reference_rans_streams_identical"] = gpu_bin.sections == cpu_bin.sections
        for name, encoded, decoder in (("gpu_to_cpu", gpu_encoded, cpu_model), ("cpu_to_gpu", cpu_encoded, model)):
            try:
                pixels = decoder.decompress(encoded).cpu()
                same_device = (cpu_model if decoder is model else model).decompress(encoded).cpu()
                result[name] = {
                    "decoded": True,
                    "max_grey_levels_vs_same_device": int((pixels.int() - same_device.int()).abs().max()),
                }
            except Exception as e:
                result[name] = {"decoded": False, "error": f"{type(e).__name__}: {e}"}
        return result

    check.step("cross-device", cross_device, needs_s=30)

    originals = {"generator": model.generator, "decoder": model.autoencoder.vae.decoder}

    def compiled_step(size: tuple[int, int], mode: str | None) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            if mode == "reduce-overhead" and device.type != "cuda":
                return {"skipped": "CUDA graphs need a CUDA device"}
            torch._dynamo.reset()
            model.generator = torch.compile(originals["generator"], mode=mode)
            model.autoencoder.vae.decoder = torch.compile(originals["decoder"], mode=mode)
            try:
                encoded = eager[size]["_encoded"]

                def decode() -> torch.Tensor:
                    with autocast(device, bf16):
                        return model.decompress(encoded)

                start = time.perf_counter()
                decode()  # compiles
                sync(device)
                compile_s = time.perf_counter() - start
                pixels, stats = timed(decode, device, args.repeats)
            finally:
                model.generator = originals["generator"]
                model.autoencoder.vae.decoder = originals["decoder"]
            grey = (pixels.cpu().int() - eager[size]["_pixels"].int()).abs()
            return {"first_call_s": round(compile_s, 2), "decode": stats, "max_grey_levels_vs_eager": int(grey.max())}

        return run

    for size in args.sizes:
        for name, mode in (("compiled", None), ("cuda-graphs", "reduce-overhead")):
            if size in eager:
                check.step(f"{name}/{label[size]}", compiled_step(size, mode), needs_s=90)
    print(json.dumps({k: v for k, v in check.report.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
