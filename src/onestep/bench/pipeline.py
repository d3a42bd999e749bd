"""`onestep bench pipeline`: time a whole pipeline of a registered method (random weights), or a model
folder, on one image size.

For each precision it runs `compress` (autoencoder encode, codec analysis, entropy coding) and `decompress`
(entropy decoding, codec synthesis, one generator call, autoencoder decode) and records the median wall / CPU
time, the stream size and the peak memory of each phase: resident memory sampled from /proc on CPU, the
allocator's peak on CUDA. bfloat16 runs the calls under autocast; codecs keep their entropy-parameter path
in float32 themselves, so streams stay decodable. The numerics are those of `onestep compress`
(`pipeline.deterministic`: the entropy path on one intra-op thread on CPU, the rest at the process's thread
count; deterministic kernels on CUDA).

A method's bench presets (`Method.bench`) give the architecture, its arguments, size, precisions and mode;
command-line options override them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import ConfigError
from ..images import read_image
from ..methods.pipeline import OneStepPipeline
from ..methods.registry import get_method, methods
from .entropy import machine_info

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
FALLBACKS = {"size": "768x512", "dtypes": "float32,bfloat16", "mode": "normal"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=sorted(methods()), help="time this method's pipeline (random weights)")
    parser.add_argument("--preset", help="one of the method's bench presets (default: its first)")
    parser.add_argument("--arch", help="the method's architecture (default: the preset's)")
    parser.add_argument(
        "--arg", action="append", default=[], metavar="KEY=VALUE", help="architecture argument, e.g. lora_rank=64"
    )
    parser.add_argument("--model", help="time this model folder instead of a method's random pipeline")
    parser.add_argument("--image", help="time this image instead of random pixels (its size replaces --size)")
    parser.add_argument("--size", help=f"image WIDTHxHEIGHT (default {FALLBACKS['size']})")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtypes", help=f"comma-separated: float32, bfloat16 (default {FALLBACKS['dtypes']})")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per phase (the median is kept)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed runs before timing (use 1+ on GPU)")
    parser.add_argument("--mode", help="codec mode to time (default: the preset's, else normal)")
    parser.add_argument("--preview", action="store_true", help="time the model's preview decode (SODEC)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", help="free text stored in the JSON")
    parser.add_argument("-o", "--output", type=Path, help="write the JSON here (it is always printed)")


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The preset's settings under the command line's: method, arch, kwargs, size, dtypes, mode."""
    if (args.method is None) == (args.model is None):
        raise ConfigError("give exactly one of --method and --model")
    preset: dict[str, Any] = {}
    if args.method is not None:
        method = get_method(args.method)
        preset = method.bench_preset(args.preset or next(iter(method.bench))) if method.bench else {}
        preset.setdefault("arch", next(iter(method.architectures)))
    elif args.preset or args.arch or args.arg:
        raise ConfigError("--preset, --arch and --arg choose a method's architecture: use them with --method")
    kwargs = dict(preset.get("kwargs") or {})
    for text in args.arg:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ConfigError(f"--arg {text!r} is not of the form KEY=VALUE")
        kwargs[key] = yaml.safe_load(value)
    chosen = {key: getattr(args, key) or preset.get(key) or FALLBACKS.get(key) for key in ("arch", *FALLBACKS)}
    return {"method": args.method, **chosen, "kwargs": kwargs}


def run(args: argparse.Namespace) -> int:
    chosen = settings(args)
    width, height = _parse_size(chosen["size"])
    names = [d.strip() for d in chosen["dtypes"].split(",") if d.strip()]
    unknown = [d for d in names if d not in DTYPES]
    if unknown or not names:
        raise ConfigError(f"--dtypes takes {', '.join(DTYPES)}; got {chosen['dtypes']!r}")
    if args.repeats < 1 or args.warmup < 0:
        raise ConfigError("--repeats must be positive and --warmup non-negative")

    def save(report: dict[str, Any]) -> None:
        # Rewritten after each precision: an interrupted full-size run keeps what it measured.
        if args.note and args.note not in report["notes"]:
            report["notes"].insert(0, args.note)
        if args.output is not None:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(report, indent=2) + "\n")

    report = bench_pipeline(
        chosen["method"],
        chosen["arch"],
        width,
        height,
        args.device,
        names,
        args.repeats,
        args.warmup,
        chosen["kwargs"],
        chosen["mode"],
        args.seed,
        on_progress=save,
        model_dir=args.model,
        image_path=args.image,
        preview=args.preview,
    )
    print(json.dumps(report, indent=2))
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size must look like 768x512, got {text!r}") from None
    if width < 1 or height < 1:
        raise ConfigError(f"--size must be positive, got {text!r}")
    return width, height


def bench_pipeline(
    method: str | None,
    arch: str | None,
    width: int,
    height: int,
    device: str,
    dtypes: list[str],
    repeats: int = 1,
    warmup: int = 0,
    kwargs: dict[str, Any] | None = None,
    mode: str = "normal",
    seed: int = 0,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    model_dir: str | None = None,
    image_path: str | None = None,
    preview: bool = False,
) -> dict[str, Any]:
    """Time `method`'s architecture `arch` built with `kwargs` (random weights), or the model in `model_dir`."""
    device_type = torch.device(device).type
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available")
        # Streams are made with deterministic kernels; cuBLAS needs this to honour that.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if (method is None) == (model_dir is None):
        raise ConfigError("time either a method's architecture or a model folder")
    torch.manual_seed(seed)
    start = time.perf_counter()
    from ..api import load_model

    with PeakMemory(device) as build_memory:
        if model_dir is not None:
            model = load_model(model_dir, device=device)
        else:
            model = get_method(method).build(arch, **(kwargs or {})).to(device).eval()
    build_seconds = time.perf_counter() - start
    if mode not in model.modes:
        raise ConfigError(f"--mode must be one of {', '.join(model.modes)}")
    if image_path is not None:
        image = read_image(image_path)
        height, width = image.shape[-2:]
    else:
        generator = torch.Generator().manual_seed(seed)
        image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    report: dict[str, Any] = {
        "benchmark": "pipeline",
        "method": model.name if model_dir is not None else method,
        "arch": None if model_dir is not None else arch,
        "arguments": None if model_dir is not None else dict(kwargs or {}),
        "weights": str(model_dir) if model_dir is not None else "random",
        "image_file": image_path,
        "mode": mode,
        "preview": preview,
        "image": {"width": width, "height": height},
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device_type == "cuda" else None,
        "machine": machine_info(),
        "parameters": {
            "autoencoder": model.autoencoder.num_parameters(),
            "codec": model.codec.num_parameters(),
            "generator": model.generator.num_parameters(),
            "total": model.num_parameters(),
        },
        "build": {"seconds": round(build_seconds, 2), **build_memory.result()},
        "repeats": repeats,
        "warmup": warmup,
        "runs": {},
    }
    reconstructions = {}
    for name in dtypes:
        report["runs"][name], reconstructions[name] = _bench_dtype(
            model, image, mode, DTYPES[name], repeats, warmup, preview
        )
        if "float32" in reconstructions:
            diff = (reconstructions[name].int() - reconstructions["float32"].int()).abs()
            report["runs"][name]["max_abs_diff_vs_float32"] = int(diff.max())
        report["machine"]["load_average_1min_after"] = machine_info()["load_average_1min"]
        report["notes"] = _notes(report)
        if on_progress is not None:
            on_progress(report)
    return report


def _bench_dtype(
    model: OneStepPipeline,
    image: torch.Tensor,
    mode: str,
    dtype: torch.dtype,
    repeats: int,
    warmup: int,
    preview: bool = False,
) -> tuple[dict[str, Any], torch.Tensor]:
    device = next(model.parameters()).device

    def autocast() -> Any:
        return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def encode() -> Any:
        with autocast():
            return model.compress(image, mode=mode)

    def decode() -> torch.Tensor:
        with autocast():
            return model.decompress(encoded, preview=preview)

    for _ in range(warmup):
        encoded = encode()
        decode()
    encoded, encode_stats = _measure(encode, repeats, device)
    recon, decode_stats = _measure(decode, repeats, device)
    size = sum(len(s) for s in encoded.sections.values())
    result = {
        "encode": encode_stats,
        "decode": decode_stats,
        "payload_bytes": size,
        "sections": {k: len(v) for k, v in encoded.sections.items()},
        "payload_bpp": round(8 * size / (encoded.height * encoded.width), 5),
    }
    return result, recon


def _measure(fn: Callable[[], Any], repeats: int, device: torch.device) -> tuple[Any, dict[str, Any]]:
    wall, cpu, memory = [], [], []
    result = None
    for _ in range(repeats):
        _sync(device)
        with PeakMemory(device) as peak:
            w, c = time.perf_counter(), time.process_time()
            result = fn()
            _sync(device)
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
        memory.append(peak.result())
    stats: dict[str, Any] = {
        "wall_s": round(statistics.median(wall), 3),
        "cpu_s": round(statistics.median(cpu), 3),
        "wall_s_all": [round(v, 3) for v in wall],
    }
    stats.update({k: max(m[k] for m in memory) for k in memory[0]})
    return result, stats


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory while the block runs. CPU: the kernel's resident high-water mark, reset on entry
    (/proc/self/clear_refs), so a short-lived peak is not missed; where that reset is not allowed, the
    resident set size sampled every 5 ms. The block's start value is kept so the increase is visible.
    CUDA: torch's allocator peak."""

    def __init__(self, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self.peak = self.start = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            self.start = self.peak = _rss_bytes()
            self._high_water = _reset_high_water()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *_: Any) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes(), _high_water_bytes() if self._high_water else 0)

    def result(self) -> dict[str, float]:
        kind = "gpu_allocated" if self.device.type == "cuda" else "rss"
        return {f"{kind}_start_mb": _mb(self.start), f"peak_{kind}_mb": _mb(self.peak)}


def _reset_high_water() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _high_water_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the process high-water mark (kilobytes on Linux, bytes on macOS)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _mb(n: int) -> float:
    return round(n / 2**20, 1)


def _notes(report: dict[str, Any]) -> list[str]:
    notes = []
    machine = report["machine"]
    loads = [x for x in (machine["load_average_1min"], machine["load_average_1min_after"]) if x is not None]
    if report["device"] == "cpu" and loads and max(loads) > 0.5 * (machine["cores"] or 1):
        notes.append(
            f"shared machine: 1-min load average up to {max(loads)} on {machine['cores']} cores; wall times are "
            "inflated by other processes"
        )
    if report["device"] == "cpu":
        notes.append("CPU bfloat16 autocast covers conv/linear/matmul; its speed depends on the CPU's bf16 support")
    notes.append("the VAE runs in float32 under bfloat16 autocast, as in the reference; the entropy path too")
    if report["weights"] == "random":
        notes.append("random weights: stream sizes and reconstructions say nothing about compression quality")
    return notes
