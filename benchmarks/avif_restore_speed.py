"""Speed and memory of the AVIF-restoration model through the library API (what `onestep compress` runs).

    python benchmarks/avif_restore_speed.py --model src/onestep/weights/avif-restore-v1 \
        --image ../shared/data/kodak/kodim23.png -o benchmarks/avif-restore-speed.json [--big 6000x4000]

For each quality: the median wall time of `api.compress` and `api.decompress` over `--repeats` runs on a
768x512 image, and the file's bpp. Given several images (`--image a.png b.png ...`), each quality reports the
median over the images of each image's median, and the slowest image, since encode time depends on content.
The machine's load average is recorded before and after, since this machine is shared. With `--big`, one
compress + decompress of an image of that size (Kodak upscaled) in a fresh process each, with the process's
peak RSS from the kernel's high-water mark.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import resource, sys, time, torch
from PIL import Image
from onestep import api
from onestep.images import read_image
torch.set_num_threads(2)
model = api.load_model(sys.argv[1])
width, height = map(int, sys.argv[3].split("x"))
picture = Image.open(sys.argv[2]).convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
image = torch.from_numpy(__import__("numpy").asarray(picture).copy()).permute(2, 0, 1).contiguous()
del picture
start = time.perf_counter()
if sys.argv[4] == "compress":
    data = api.compress(model, image, quality=int(sys.argv[5]))
    open(sys.argv[6], "wb").write(data)
else:
    del image
    api.decompress(model, open(sys.argv[6], "rb").read())
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def timed(fn, repeats: int) -> tuple[object, float]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def big_image(model: str, image: str, size: str, quality: int) -> dict[str, object]:
    stream = Path("/tmp") / f"onestep-bench-{os.getpid()}.osc"
    result: dict[str, object] = {"size": size, "quality": quality}
    try:
        for phase in ("compress", "decompress"):
            args = [sys.executable, "-c", CHILD, model, image, size, phase, str(quality), str(stream)]
            out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
            result[phase] = {"wall_s": round(float(out[0]), 2), "peak_rss_mb": round(float(out[1]), 1)}
        width, height = map(int, size.split("x"))
        result["bpp"] = round(8 * stream.stat().st_size / (width * height), 4)
    finally:
        stream.unlink(missing_ok=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", required=True, nargs="+")
    parser.add_argument("--qualities", help="comma-separated quality indices (default: every level of the model)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--big", help="WIDTHxHEIGHT of a large-image memory run, e.g. 6000x4000")
    parser.add_argument("--big-quality", type=int, default=7)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()

    import torch

    from onestep import api
    from onestep.bench.entropy import machine_info
    from onestep.images import read_image

    torch.set_num_threads(2)
    load_before = os.getloadavg()
    model = api.load_model(args.model)
    images = {Path(path).name: read_image(path) for path in args.image}
    first = next(iter(images.values()))
    api.decompress(model, api.compress(model, first))  # warm-up: first calls pay for kernel selection
    rows = []
    qualities = range(len(model.codec.levels)) if args.qualities is None else map(int, args.qualities.split(","))
    for quality in qualities:
        per_image = {}
        for name, image in images.items():
            data, encode_s = timed(lambda q=quality, i=image: api.compress(model, i, quality=q), args.repeats)
            _, decode_s = timed(lambda d=data: api.decompress(model, d), args.repeats)
            height, width = image.shape[-2:]
            per_image[name] = (8 * len(data) / (height * width), encode_s, decode_s)
        divisor, avif_quality = model.codec.levels[quality]
        row = {
            "quality": quality,
            "base": f"1/{divisor} size, AVIF quality {avif_quality}",
            "bpp": round(statistics.median(v[0] for v in per_image.values()), 4),
            "encode_s": round(statistics.median(v[1] for v in per_image.values()), 3),
            "decode_s": round(statistics.median(v[2] for v in per_image.values()), 3),
        }
        if len(images) > 1:
            slowest_encode = max(per_image, key=lambda n: per_image[n][1])
            slowest_decode = max(per_image, key=lambda n: per_image[n][2])
            row["slowest_encode"] = {"image": slowest_encode, "s": round(per_image[slowest_encode][1], 3)}
            row["slowest_decode"] = {"image": slowest_decode, "s": round(per_image[slowest_decode][2], 3)}
        rows.append(row)
        print(rows[-1], flush=True)
    height, width = first.shape[-2:]
    what = Path(args.image[0]).name if len(images) == 1 else f"{len(images)} images, e.g. {Path(args.image[0]).name}"
    result = {
        "what": f"api.compress / api.decompress of {what} ({width}x{height}), median of {args.repeats} runs per "
        "quality (and image), after one warm-up; torch threads 2 (coding itself runs on one)",
        "model": args.model,
        "machine": machine_info(),
        "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "note": "the machine is shared with other engineers' jobs; the load averages say how busy it was",
        "qualities": rows,
        "worst_encode_s": max(r.get("slowest_encode", {}).get("s", r["encode_s"]) for r in rows),
        "worst_decode_s": max(r.get("slowest_decode", {}).get("s", r["decode_s"]) for r in rows),
    }
    if args.big:
        result["big_image"] = big_image(args.model, args.image[0], args.big, args.big_quality)
        print(result["big_image"], flush=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
