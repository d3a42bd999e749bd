"""The measurements behind the AVIF-restoration model's quality ladder (not run by CI).

AVIF through Pillow (speed 6) of each image at full, 1/2 and 1/4 size (Lanczos down, Lanczos back up), at a
range of qualities and both 4:2:0 and 4:4:4; per image: bytes, bpp, PSNR, MS-SSIM, SSIMULACRA2, ENL2-dist.
No generator is involved: this is the base layer alone, which is what decides where a reduced base layer pays.

    python benchmarks/avif_ladder_sweep.py results/avif-ladder-sweep/rows.jsonl [--every 2]
    python benchmarks/avif_ladder_sweep.py results/avif-ladder-sweep/rows.jsonl --analyse

The analysis adds the container's 66 bytes (64 B header + 2 B section header) to every file and reports
BD-rates of candidate ladders against full-size AVIF (qualities 0, 12, 28, 42, 62; the eval uses 45 for 42).
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
METRICS = ("psnr-rgb", "ms-ssim-rgb", "ssimulacra2", "enl2-dist")
CONFIGS = (
    [(1, q, "4:2:0") for q in (0, 5, 8, 12, 16, 20, 24, 28, 32, 36, 42, 50, 56, 62)]
    + [(2, q, "4:2:0") for q in (0, 12, 25, 35, 45, 50, 55, 60, 65, 70, 75, 80)]
    + [(4, q, "4:2:0") for q in (0, 20, 35, 50, 65)]
    + [(1, q, "4:4:4") for q in (12, 28, 45)]
    + [(2, q, "4:4:4") for q in (50, 65)]
)
CONTAINER_BYTES = 66
ANCHOR = [(1, q, "4:2:0") for q in (0, 12, 28, 42, 62)]  # the eval's anchor, 42 for its 45 (not swept)
LADDERS = {
    "1.0": [(4, 0), (4, 20), (2, 0), (2, 12), (2, 25), (1, 0), (1, 8), (1, 16), (1, 24), (1, 32), (1, 42), (1, 50)],
    "1.1": [(4, 0), (4, 20), (2, 0), (2, 12), (2, 25), (2, 35), (2, 45), (1, 24), (1, 32), (1, 42), (1, 50)],
    "half size to 0.3 bpp": [(4, 0), (4, 20), (2, 0), (2, 12), (2, 25), (2, 35), (2, 45), (2, 55), (2, 60),
                             (1, 32), (1, 42), (1, 50)],
    "half size to 0.11 bpp": [(4, 0), (4, 20), (2, 0), (2, 12), (2, 25), (2, 35), (1, 12), (1, 16), (1, 24),
                              (1, 32), (1, 42), (1, 50)],
}  # fmt: skip


def measure(out: Path, every: int) -> None:
    from onestep.eval.metrics import build_suite

    torch.set_num_threads(1)
    suite = build_suite(list(METRICS))
    with out.open("a") as rows:
        for path in sorted(KODAK.glob("*.png"))[::every]:
            picture = Image.open(path).convert("RGB")
            w, h = picture.size
            reference = torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)
            prepared = [m.prepare(reference) for m in suite.image_metrics]
            for divisor, quality, subsampling in CONFIGS:
                started = time.time()
                small = (
                    picture.resize((w // divisor, h // divisor), Image.Resampling.LANCZOS) if divisor > 1 else picture
                )
                buffer = io.BytesIO()
                small.save(buffer, format="AVIF", quality=quality, subsampling=subsampling, speed=6)
                encode_s = time.time() - started
                decoded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
                if divisor > 1:
                    decoded = decoded.resize((w, h), Image.Resampling.LANCZOS)
                pixels = torch.from_numpy(np.asarray(decoded).copy()).permute(2, 0, 1)
                size = len(buffer.getvalue())
                row = {"image": path.stem, "d": divisor, "q": quality, "sub": subsampling, "bytes": size,
                       "bpp": 8 * size / (w * h), "enc_s": encode_s}  # fmt: skip
                row.update({m.info.key: m.measure(p, pixels) for m, p in zip(suite.image_metrics, prepared)})
                rows.write(json.dumps(row) + "\n")
                rows.flush()
            print(path.stem, flush=True)


def analyse(out: Path) -> dict[str, object]:
    from onestep.eval.bdrate import bd_rate

    rows = [json.loads(line) for line in out.open()]
    per: dict[tuple, dict[str, dict]] = collections.defaultdict(dict)
    for r in rows:
        per[(r["d"], r["q"], r["sub"])][r["image"]] = r
    images = sorted(set.intersection(*(set(v) for v in per.values())))

    def mean(config: tuple) -> dict[str, float]:
        values = [per[config][i] for i in images]
        result = {"bpp": float(np.mean([v["bpp"] * (v["bytes"] + CONTAINER_BYTES) / v["bytes"] for v in values]))}
        result.update({m: float(np.mean([v[m] for v in values])) for m in METRICS})
        return result

    table = {c: mean(c) for c in per}
    report: dict[str, object] = {"images": images, "container_bytes_added": CONTAINER_BYTES,
                                 "anchor": [list(c) for c in ANCHOR], "ladders": {}}  # fmt: skip
    for name, ladder in LADDERS.items():
        points = [(d, q, "4:2:0") for d, q in ladder]
        report["ladders"][name] = {"levels": ladder, "bd_rate_percent": {
            m: round(bd_rate([table[c]["bpp"] for c in ANCHOR], [table[c][m] for c in ANCHOR],
                             [table[c]["bpp"] for c in points], [table[c][m] for c in points],
                             higher_is_better=m != "enl2-dist"), 2)
            for m in METRICS}}  # fmt: skip
    report["means"] = [
        {"d": c[0], "q": c[1], "sub": c[2], **table[c]} for c in sorted(table, key=lambda c: table[c]["bpp"])
    ]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=Path)
    parser.add_argument("--every", type=int, default=2, help="every n-th Kodak image")
    parser.add_argument("--analyse", action="store_true")
    args = parser.parse_args()
    if args.analyse:
        report = analyse(args.rows)
        (args.rows.parent / "summary.json").write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report["ladders"], indent=1))
    else:
        measure(args.rows, args.every)


if __name__ == "__main__":
    main()
