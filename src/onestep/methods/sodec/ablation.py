"""Does the fidelity guidance matter? The `small` SODEC trained on a CPU with and without FGM, at the same bits.

    python -m onestep.methods.sodec.ablation --out results/sodec-guidance --stage1-minutes 25 --stage2-minutes 25

1. stage 1 (`configs/small-stage1.yaml`) once, for a wall-clock budget: E, H_a, P and D_a.
2. stage 2 (`configs/small-stage2.yaml`) twice from stage 1's model, with `guidance: fidelity` (for the budget)
   and `guidance: none` (for exactly as many steps): E, H_a and P are frozen in stage 2, so both models make
   the same y and z streams for every image (checked, section by section): the same bits by construction.
3. Kodak (`../shared/data/kodak`): bpp from the real file size, MS-SSIM and PSNR of the normal decode of both
   models and of the preview (x_f), written to OUT/kodak.json with the step counts and timings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from ... import api
from ...eval.fidelity import ms_ssim, psnr
from ...images import read_image
from ...train.config import load_config
from ...train.engine import Trainer, set_training_modes

CONFIGS = Path(__file__).parent / "configs"


def train_for(config: dict[str, Any], seconds: float | None = None, steps: int | None = None) -> dict[str, Any]:
    """Train until `seconds` have passed or `steps` are done; export the model. Returns steps and timing."""
    trainer = Trainer(config)
    batches = trainer._batches()
    set_training_modes(trainer.task)
    torch.manual_seed(config["seed"])  # as `Trainer.run` seeds a fresh run
    start, logs = time.monotonic(), {}
    while (steps is None or trainer.step < steps) and (seconds is None or time.monotonic() - start < seconds):
        logs = trainer.train_step(next(batches))
        if trainer.step % 25 == 0:
            print(f"{config['output_dir']} step {trainer.step}: {json.dumps(logs)}", flush=True)
    elapsed = time.monotonic() - start
    trainer.save()
    trainer.export()
    return {"steps": trainer.step, "seconds": round(elapsed, 1), "last_logs": logs}


def evaluate(models: dict[str, Path], kodak: Path) -> dict[str, Any]:
    loaded = {name: api.load_model(path) for name, path in models.items()}
    rows = []
    for path in sorted(kodak.glob("*.png")):
        image = read_image(path)
        row: dict[str, Any] = {"image": path.name}
        sections = {}
        for name, model in loaded.items():
            data = api.compress(model, image)
            sections[name] = api.read_container(data)[1].sections
            row[f"{name}/bpp"] = 8 * len(data) / (image.shape[-2] * image.shape[-1])
            start = time.monotonic()
            decoded = api.decompress(model, data)
            row[f"{name}/decode_s"] = time.monotonic() - start
            row[f"{name}/ms_ssim"] = float(ms_ssim(image, decoded))
            row[f"{name}/psnr"] = psnr(image, decoded)
            start = time.monotonic()
            preview = api.decompress(model, data, preview=True)
            row[f"{name}/preview_decode_s"] = time.monotonic() - start
            row[f"{name}/preview_ms_ssim"] = float(ms_ssim(image, preview))
            row[f"{name}/preview_psnr"] = psnr(image, preview)
        first, *others = sections.values()
        row["same_streams"] = all(first == other for other in others)
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = [k for k in rows[0] if k not in ("image", "same_streams")]
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
    return {"images": len(rows), "mean": mean, "same_streams": all(r["same_streams"] for r in rows), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/sodec-guidance")
    parser.add_argument("--runs", default="runs/sodec-small")
    parser.add_argument("--kodak", default="../shared/data/kodak")
    parser.add_argument("--stage1-minutes", type=float, default=25)
    parser.add_argument("--stage2-minutes", type=float, default=25)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"configs": ["small-stage1.yaml", "small-stage2.yaml"], "threads": args.threads}
    stage1 = load_config(CONFIGS / "small-stage1.yaml", [f"output_dir={runs / 'stage1'}"])
    report["stage1"] = train_for(stage1, seconds=60 * args.stage1_minutes)
    init = str(runs / "stage1" / "model")
    guided = load_config(CONFIGS / "small-stage2.yaml", [f"output_dir={runs / 'guided'}", f"model.init={init}"])
    report["guided"] = train_for(guided, seconds=60 * args.stage2_minutes)
    overrides = [f"output_dir={runs / 'unguided'}", f"model.init={init}", "model.kwargs.guidance=none"]
    unguided = load_config(CONFIGS / "small-stage2.yaml", overrides)
    report["unguided"] = train_for(unguided, steps=report["guided"]["steps"])
    (out / "training.json").write_text(json.dumps(report, indent=2))
    models = {"guided": runs / "guided" / "model", "unguided": runs / "unguided" / "model"}
    report["kodak"] = evaluate(models, Path(args.kodak))
    (out / "kodak.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report["kodak"]["mean"], indent=2))


if __name__ == "__main__":
    main()
