"""Check our SSIMULACRA2 (and, for comparison, the PyPI `ssimulacra2` package if installed) against libjxl's
reference C++ on Kodak images and codec outputs of them:

    python -m onestep.eval.validate_ssimulacra2 --tool PATH/ssimulacra2 -o results/.../ssimulacra2-validation.json

`--tool` is a build of libjxl's tools/ssimulacra2 (any program called as `tool original.png distorted.png`
that prints the score). Pairs: every image with two codec outputs, the codecs and settings cycling through
JPEG, WebP, AVIF, JPEG XL and downscaled AVIF at low to high rates, so scores span about -30 to 90.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ..images import encode_png
from .baselines import any_baseline
from .dataset import load_folder
from .ssimulacra2 import Ssimulacra2

# (codec, setting), cycled over the pairs
CODEC_SETTINGS = (
    ("jpeg", 5), ("webp", 10), ("avif", 20), ("jxl", 8), ("avif-down2", 25), ("jpeg", 40),
    ("webp", 60), ("avif", 45), ("jxl", 2.2), ("avif-down4", 50), ("jpeg", 90), ("avif", 5),
)  # fmt: skip


def _package_score(reference: Path, distorted: Path) -> float | None:
    try:
        from ssimulacra2 import compute_ssimulacra2
    except ImportError:
        return None
    return float(compute_ssimulacra2(str(reference), str(distorted)))


def validate(
    tool: str, images_folder: str, per_image: int = 2, limit: int | None = None, package_pairs: int = 12
) -> dict[str, Any]:
    torch.set_num_threads(1)
    ours = Ssimulacra2()
    codecs = {name: any_baseline(name, (setting,)) for name, setting in CODEC_SETTINGS}
    pairs = []
    with tempfile.TemporaryDirectory(prefix="onestep-ssimulacra2-") as folder:
        for index, image in enumerate(load_folder(images_folder, limit)):
            reference = Path(folder) / f"{image.name}.png"
            reference.write_bytes(encode_png(image.pixels))
            prepared = ours.prepare(image.pixels)
            for k in range(per_image):
                name, setting = CODEC_SETTINGS[(index * per_image + k) % len(CODEC_SETTINGS)]
                codec = codecs[name]
                data = codec.encode(setting, image.pixels)
                decoded = codec.decode(setting, data)
                distorted = Path(folder) / f"{image.name}-{name}-{setting}.png"
                distorted.write_bytes(encode_png(decoded))
                output = subprocess.run([tool, str(reference), str(distorted)], capture_output=True, text=True)
                if output.returncode != 0:
                    raise RuntimeError(f"{tool} failed: {output.stderr.strip()}")
                started = time.perf_counter()
                value = ours.measure(prepared, decoded)
                ours_s = time.perf_counter() - started
                started = time.perf_counter()
                # the package is slow (pure numpy, seconds a pair): compared on the first pairs only
                package = _package_score(reference, distorted) if len(pairs) < package_pairs else None
                package_s = time.perf_counter() - started
                pairs.append(
                    {
                        "image": image.name,
                        "codec": codec.label,
                        "setting": setting,
                        "bpp": 8 * len(data) / image.num_pixels,
                        "reference": float(output.stdout.split()[0]),
                        "ours": value,
                        "package": package,
                        "ours_s": ours_s,
                        "package_s": package_s,
                    }
                )
                print(f"{image.name} {codec.label} {setting}: reference {pairs[-1]['reference']:.4f} ours {value:.4f}"
                      f" package {package if package is None else round(package, 4)}", flush=True)  # fmt: skip
    return {"pairs": pairs, "summary": summarize(pairs)}


def summarize(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"pairs": len(pairs)}
    for name in ("ours", "package"):
        differences = [abs(p[name] - p["reference"]) for p in pairs if p[name] is not None]
        if differences:
            summary[name] = {
                "max_abs_difference": max(differences),
                "mean_abs_difference": statistics.fmean(differences),
                "mean_seconds_per_pair": statistics.fmean(p[f"{name}_s"] for p in pairs if p[name] is not None),
            }
    summary["reference_range"] = [min(p["reference"] for p in pairs), max(p["reference"] for p in pairs)]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", required=True, help="libjxl's ssimulacra2 program")
    parser.add_argument("--images", default="../shared/data/kodak")
    parser.add_argument("--per-image", type=int, default=2)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--package-pairs", type=int, default=12, help="pairs the PyPI package is also run on")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    result = validate(args.tool, args.images, args.per_image, args.limit, args.package_pairs)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
