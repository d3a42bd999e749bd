"""Entropy-coding benchmark: encode/decode time and size for (a) many symbols with random scale indices
and (b) the y and z of one 768x512 image at the shapes of the released SD-based codec's hyperprior (y: 128 x
32 x 48 coded in the 4 chunks of the 4-pass prior; z: 96 FSQ indices packed at 14 bits), plus the table
build time.

Times are medians over several runs, both wall clock and process CPU time: on a shared machine the CPU
time is the steadier number.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..entropy import FSQ, GaussianConditional, gaussian_tables, pack_indices, unpack_indices
from ..entropy.gaussian import _models
from ..entropy.tables import NUM_SCALES, SCALE_MAX, SCALE_MIN
from ..eval.environment import cpu_name

Y_CHANNELS = 128  # y at /16 and z's FSQ levels at /64, as in the released SD-based hyperprior codec
FSQ_LEVELS = [4] * 7
PASSES = 4


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "versions": {p: importlib.metadata.version(p) for p in ("constriction", "numpy", "torch")},
    }


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, dict[str, float]]:
    """Run fn `repeats` times; the last result and the median wall / CPU milliseconds."""
    wall, cpu = [], []
    result = None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return result, {"wall_ms": 1000 * statistics.median(wall), "cpu_ms": 1000 * statistics.median(cpu)}


def _round_times(times: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in times.items()}


def _code_chunks(gc: GaussianConditional, chunks: list[tuple[torch.Tensor, torch.Tensor]], repeats: int) -> dict:
    def encode() -> bytes:
        enc = gc.encoder()
        for sym, idx in chunks:
            enc.add(sym, idx)
        return enc.finish()

    def decode() -> list[torch.Tensor]:
        dec = gc.decoder(data)
        out = [dec.read(idx) for _, idx in chunks]
        dec.finish()
        return out

    data, enc_t = _timed(encode, repeats)
    decoded, dec_t = _timed(decode, repeats)
    if not all(torch.equal(d, s.to(torch.int32)) for d, (s, _) in zip(decoded, chunks)):
        raise RuntimeError("entropy coder round trip failed")
    count = sum(s.numel() for s, _ in chunks)
    return {
        "symbols": count,
        "bytes": len(data),
        "bits_per_symbol": round(8 * len(data) / max(count, 1), 4),
        "encode": _round_times(enc_t),
        "decode": _round_times(dec_t),
    }


def _gaussian_symbols(gc: GaussianConditional, scales: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """round(y - mu) for y ~ N(mu, s): the residual the codec would code."""
    return torch.from_numpy(np.round(rng.normal(0.0, scales)).astype(np.int32))


def bench_random_indices(gc: GaussianConditional, num_symbols: int, repeats: int, seed: int = 0) -> dict:
    """Scale indices uniform over the table; symbols drawn from each index's Gaussian."""
    rng = np.random.default_rng(seed)
    idx = torch.from_numpy(rng.integers(0, gc.num_scales, num_symbols))
    sym = _gaussian_symbols(gc, gc.scale_table.double().numpy()[idx.numpy()], rng)
    return {"scale_indices": "uniform over the table", **_code_chunks(gc, [(sym, idx)], repeats)}


def bench_image_y(
    gc: GaussianConditional, height: int, width: int, scale_range: tuple[float, float], repeats: int, seed: int = 0
) -> dict:
    """y of one image: 128 x H/16 x W/16 residuals, 4 chunks of 32 x H/16 x W/16 (one per prior pass),
    scales log-uniform over `scale_range`."""
    rng = np.random.default_rng(seed)
    shape = (Y_CHANNELS // PASSES, height // 16, width // 16)
    lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
    chunks = []
    for _ in range(PASSES):
        scales = np.exp(rng.uniform(lo, hi, size=shape))
        idx = gc.scale_index(torch.from_numpy(scales).float())
        chunks.append((_gaussian_symbols(gc, scales, rng), idx))
    result = _code_chunks(gc, chunks, repeats)
    result["bpp"] = round(8 * result["bytes"] / (height * width), 5)
    return {"shape": [Y_CHANNELS, *shape[1:]], "chunks": PASSES, "scales_loguniform": list(scale_range), **result}


def bench_image_z(height: int, width: int, repeats: int, seed: int = 0) -> dict:
    fsq = FSQ(FSQ_LEVELS)
    count = (height // 64) * (width // 64)
    indices = torch.from_numpy(np.random.default_rng(seed).integers(0, fsq.codebook_size, count))
    data, enc_t = _timed(lambda: pack_indices(indices, fsq.bits_per_index), repeats)
    out, dec_t = _timed(lambda: unpack_indices(data, count, fsq.bits_per_index, fsq.codebook_size), repeats)
    if not np.array_equal(out, indices.numpy()):
        raise RuntimeError("index packing round trip failed")
    return {
        "indices": count,
        "bits_per_index": fsq.bits_per_index,
        "bytes": len(data),
        "bpp": round(8 * len(data) / (height * width), 5),
        "encode": _round_times(enc_t),
        "decode": _round_times(dec_t),
    }


def bench_table_build(repeats: int) -> dict:
    """Building the integer tables, and the constriction models from built tables (each uncached)."""
    args = (SCALE_MIN, SCALE_MAX, NUM_SCALES)
    tables, t_tables = _timed(lambda: gaussian_tables.__wrapped__(*args), repeats)
    _, t_models = _timed(lambda: _models.__wrapped__(*args), repeats)
    return {"tables": _round_times(t_tables), "models": _round_times(t_models), "sha256": tables.sha256()}


def run_entropy_bench(
    num_symbols: int = 1_000_000, repeats: int = 7, height: int = 512, width: int = 768, note: str | None = None
) -> dict:
    gc = GaussianConditional()
    report: dict[str, Any] = {"machine": machine_info(), "repeats": repeats}
    report["table_build"] = bench_table_build(repeats)
    report["random_indices"] = bench_random_indices(gc, num_symbols, repeats)
    report["image"] = {
        "size": [height, width],
        "y_full_range": bench_image_y(gc, height, width, (SCALE_MIN, SCALE_MAX), repeats),
        "y_small_scales": bench_image_y(gc, height, width, (SCALE_MIN, 1.0), repeats),
        "z": bench_image_z(height, width, repeats),
    }
    machine = report["machine"]
    machine["load_average_1min_after"] = machine_info()["load_average_1min"]
    notes = [note] if note else []
    loads = [x for x in (machine["load_average_1min"], machine["load_average_1min_after"]) if x is not None]
    if loads and max(loads) > 0.5 * (machine["cores"] or 1):
        notes.append(
            f"shared machine: 1-min load average up to {max(loads)} on {machine['cores']} cores during the run; "
            "wall times are inflated by other processes, CPU times much less"
        )
    report["notes"] = notes
    return report
