"""libaom encoder options of the AVIF base layer against Pillow's defaults (not run by CI).

Every 6th Kodak image from the 3rd (4 images), full size, 4:2:0, speed 6 unless named, AVIF qualities 8-42; per
option the BD-rate against the defaults (pchip; negative = fewer bits at equal quality) on PSNR, MS-SSIM,
SSIMULACRA2 and ENL2-dist, and the mean encode time (Pillow's default encoder threads, on a machine shared with
other jobs: compare times within one run only). libavif 1.4 already sets libaom's `tune=iq` for still images (so
`enable-qm` and `enable-chroma-deltaq` change nothing); the loop filter's `sharpness` and the speed do.

    python benchmarks/avif_encoder_options.py results/avif-ladder-sweep/encoder-options.json
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, features

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
METRICS = ("psnr-rgb", "ms-ssim-rgb", "ssimulacra2", "enl2-dist")
# name -> (encoder speed, libaom options)
OPTIONS: dict[str, tuple[int, list[tuple[str, str]]]] = {
    "default": (6, []),
    "tune=ssim": (6, [("tune", "ssim")]),
    "enable-qm=1": (6, [("enable-qm", "1")]),
    "enable-chroma-deltaq=1": (6, [("enable-chroma-deltaq", "1")]),
    **{f"sharpness={s}": (6, [("sharpness", str(s))]) for s in (1, 2, 3, 5)},
    **{f"speed={v} sharpness=2": (v, [("sharpness", "2")]) for v in (5, 4, 3)},
}
QUALITIES = (8, 16, 24, 32, 42)


def main() -> None:
    from onestep.eval.bdrate import bd_rate
    from onestep.eval.metrics import build_suite

    torch.set_num_threads(1)
    suite = build_suite(list(METRICS))
    images = sorted(KODAK.glob("*.png"))[2::6]
    rows: dict[tuple[str, int], dict[str, list[float]]] = {}
    for path in images:
        picture = Image.open(path).convert("RGB")
        reference = torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)
        prepared = [m.prepare(reference) for m in suite.image_metrics]
        for name, (speed, advanced) in OPTIONS.items():
            for quality in QUALITIES:
                buffer = io.BytesIO()
                extra = {"advanced": advanced} if advanced else {}
                start = time.perf_counter()
                picture.save(buffer, format="AVIF", quality=quality, subsampling="4:2:0", speed=speed, **extra)
                seconds = time.perf_counter() - start
                decoded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
                pixels = torch.from_numpy(np.asarray(decoded).copy()).permute(2, 0, 1)
                row = rows.setdefault((name, quality), {"bpp": [], "encode_s": []})
                row["encode_s"].append(seconds)
                row["bpp"].append(8 * len(buffer.getvalue()) / (picture.width * picture.height))
                for metric, p in zip(suite.image_metrics, prepared):
                    row.setdefault(metric.info.key, []).append(metric.measure(p, pixels))
    mean = {key: {k: float(np.mean(v)) for k, v in row.items()} for key, row in rows.items()}

    def curve(name: str, key: str) -> list[float]:
        return [mean[(name, q)][key] for q in QUALITIES]

    report = {
        "images": [p.stem for p in images],
        "libavif": features.version("avif"),
        "qualities": QUALITIES,
        "bd_rate_percent_vs_default": {
            name: {
                m: round(
                    bd_rate(
                        curve("default", "bpp"),
                        curve("default", m),
                        curve(name, "bpp"),
                        curve(name, m),
                        higher_is_better=m != "enl2-dist",
                    ),
                    2,
                )  # fmt: skip
                for m in METRICS
            }
            for name in OPTIONS
            if name != "default"
        },
        "means": {f"{name} q{q}": mean[(name, q)] for name, q in mean},
    }
    Path(sys.argv[1]).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["bd_rate_percent_vs_default"], indent=1))


if __name__ == "__main__":
    main()
