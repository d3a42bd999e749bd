"""OneDC's speed against the reference's, side by side on one machine (not run by CI; run it on a quiet machine).

    python benchmarks/onedc-speed-side-by-side.py --reference-src REF/src --reference-path LIBS \
        --work DIR [--rounds 3] [--threads 1] [--onestep-threads N] [--onestep-dtypes float32 bfloat16] \
        [--out benchmarks/onedc-speed-side-by-side.json]

DIR is the work folder of a finished benchmarks/onedc-reference-equivalence.py run: the released-layout weights
(checkpoint/, vae.safetensors), onestep's import of them (onestep-model/) and the reference's stream
(reference.bin), so both sides hold the same weights and decode the same file. Each side runs in its own
worker process that builds its model once (the reference from its own classes, loaded strict from the released
files; onestep from its folder); the driver then asks them in alternating turns to encode the image and to
decode the stream, `--rounds` times each, and reports medians, the ratios and each worker's peak RSS. Both
models are in memory at once: about 14 GB at 768x512.

`--onestep-dtypes`: one onestep worker per rendering precision (`OneStepPipeline.set_render_dtype`); a
bfloat16 worker loads the model for decoding only and only decodes (its encoder is float32's, untouched).
Afterwards, for each precision, a fresh process loads the model for decoding only (as `onestep decompress`
does), decodes the stream once and reports its peak RSS: the decoder's memory, without the timing workers'.
The machine's 1-minute load average is recorded before and after: above about 0.5, other work was running.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "benchmarks" / "onedc-reference-equivalence.py"


def _harness() -> Any:
    spec = importlib.util.spec_from_file_location("onedc_reference_equivalence", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def reference_worker(args: argparse.Namespace) -> tuple[Any, Any]:
    from safetensors.torch import load_file

    harness = _harness()
    model = harness.build_reference(args.reference_src, seed=0, recorder=None)
    for file, module in (("model.safetensors", model.feedforward_model), ("model_1.safetensors", model.codec_model)):
        module.load_state_dict(load_file(args.work / "checkpoint" / file), strict=True)
    model.vae_large.load_state_dict(load_file(args.work / "vae.safetensors"), strict=True)
    bin_path = str(args.work / "reference.bin")
    height, width = harness.read_bin_size(args.work / "reference.bin")
    image = harness.load_image((height, width))[None].float() / 255 * 2 - 1
    out = str(args.work / "speed-reference.bin")

    def encode() -> None:
        model.encode(image, fp=out)

    def decode() -> None:
        model.decode(fp=bin_path)

    return encode, decode


def onestep_worker(args: argparse.Namespace) -> tuple[Any, Any]:
    sys.path.insert(0, str(ROOT / "src"))
    from onestep.methods.onedc.bin_format import read_bin
    from onestep.methods.onedc.codec import REFERENCE_MODE
    from onestep.methods.pipeline import OneStepPipeline

    decode_only = args.worker == "onestep-decoder" or args.dtype != "float32"
    dtype = getattr(torch, args.dtype)
    model = OneStepPipeline.from_pretrained(args.work / "onestep-model", decode_only=decode_only, render_dtype=dtype)
    encoded = read_bin((args.work / "reference.bin").read_bytes())
    image = _harness().load_image((encoded.height, encoded.width))

    def encode() -> None:
        model.compress(image, mode=REFERENCE_MODE)

    def decode() -> None:
        model.decompress(encoded)

    return encode, decode


def worker(args: argparse.Namespace) -> None:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")  # the driver reads JSON lines here only
    sys.stdout = sys.stderr  # what the models print
    torch.set_num_threads(args.threads)
    encode, decode = (reference_worker if args.worker == "reference" else onestep_worker)(args)
    steps = {"encode": encode, "decode": decode}
    if args.worker == "onestep-decoder":  # one decode in a fresh process: its peak RSS is the decoder's
        start = time.perf_counter()
        with torch.no_grad():
            decode()
        answers.write(json.dumps({"wall_s": time.perf_counter() - start, "peak_rss_gb": _peak_rss_gb()}) + "\n")
        return

    def answer(**values: Any) -> None:
        answers.write(json.dumps(values) + "\n")
        answers.flush()

    answer(ready=True, rss_gb=round(_peak_rss_gb(), 2))
    for line in sys.stdin:
        step = steps[line.strip()]
        start = time.perf_counter()
        with torch.no_grad():
            step()
        answer(wall_s=time.perf_counter() - start, peak_rss_gb=round(_peak_rss_gb(), 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-src", type=Path, required=True)
    parser.add_argument("--reference-path", default="")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the reference (its inference.py: 1)")
    parser.add_argument("--onestep-threads", type=int, help="torch threads of onestep (default: --threads)")
    parser.add_argument("--onestep-dtypes", nargs="+", default=["float32"], choices=("float32", "bfloat16"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "onedc-speed-side-by-side.json")
    parser.add_argument("--worker", choices=("reference", "onestep", "onestep-decoder"), help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    load_before = os.getloadavg()[0]
    common = [sys.executable, __file__, "--reference-src", str(args.reference_src), "--work", str(args.work)]
    onestep_threads = str(args.onestep_threads or args.threads)

    def start(role: str, threads: str, dtype: str = "float32", env: dict[str, str] | None = None) -> Any:
        command = [*common, "--worker", role, "--threads", threads, "--dtype", dtype]
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    workers = {
        "reference": start("reference", str(args.threads), env={**os.environ, "PYTHONPATH": args.reference_path})
    }
    for dtype in args.onestep_dtypes:
        workers["onestep" if dtype == "float32" else f"onestep-{dtype}"] = start("onestep", onestep_threads, dtype)
    ready = {name: json.loads(w.stdout.readline()) for name, w in workers.items()}
    steps_of = {name: ("encode", "decode") if name in ("reference", "onestep") else ("decode",) for name in workers}
    times: dict[str, dict[str, list[float]]] = {name: {s: [] for s in steps_of[name]} for name in workers}
    rss: dict[str, float] = {}
    for _ in range(args.rounds):
        for step in ("encode", "decode"):
            for name, w in workers.items():  # alternating turns
                if step not in steps_of[name]:
                    continue
                w.stdin.write(step + "\n")
                w.stdin.flush()
                answer = json.loads(w.stdout.readline())
                times[name][step].append(answer["wall_s"])
                rss[name] = answer["peak_rss_gb"]
    for w in workers.values():
        w.stdin.close()
        w.wait()
    decoders = {}
    for dtype in args.onestep_dtypes:  # one at a time, nothing else of ours running
        w = start("onestep-decoder", onestep_threads, dtype)
        w.stdin.close()
        decoders[dtype] = json.loads(w.stdout.readline())
        w.wait()
    medians = {name: {step: statistics.median(v) for step, v in steps.items()} for name, steps in times.items()}
    reference = medians["reference"]
    result = {
        "rounds": args.rounds,
        "threads": {"reference": args.threads, "onestep": int(onestep_threads)},
        "onestep_threads_note": "onestep: the entropy path on 1 thread, the rest at the number above",
        "work": str(args.work),
        "median_s": medians,
        "all_s": times,
        "speedup": {name: {s: reference[s] / m[s] for s in m} for name, m in medians.items() if name != "reference"},
        "peak_rss_gb": rss,
        "rss_after_build_gb": {name: r["rss_gb"] for name, r in ready.items()},
        "decode_only_fresh_process": {
            dtype: {"peak_rss_gb": round(d["peak_rss_gb"], 2), "decode_s": d["wall_s"]} for dtype, d in decoders.items()
        },
        "load_average_1min_before": load_before,
        "load_average_1min_after": os.getloadavg()[0],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
