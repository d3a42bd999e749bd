"""Multi-process (DDP) training on CPU: two gloo processes started by torchrun, as accelerate does on GPUs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_train_support import REPO, tiny_config, write_images


@pytest.mark.slow
def test_two_process_ddp_trains_and_resumes_exactly(tmp_path):
    images = write_images(tmp_path / "images", 8, size=(64, 64))
    config = tiny_config(
        tmp_path,
        images,
        model={"config": None, "factory": "test_train_support:build_tiny_pipeline"},
        data={"crop": 64, "size": 64, "batch_size": 2},
        train={"steps": 3, "checkpoint_every": 2, "threads": 1, "export": False},
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(REPO / "tests"), "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "onestep.cli", "train"]

    def train(*extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*launch, str(path), *extra], env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    full = train()
    # the two processes may interleave their lines, so find the reports anywhere in the output
    reports = re.findall(r"trained to step \d+ in \S+: [^\n]*?loss=[0-9.]+", full.stdout)
    assert len(reports) == 2 and reports[0] != reports[1], "each process logs the losses of its own batches"
    checkpoint = tmp_path / "run" / "checkpoints" / "step_0000002"
    assert (checkpoint / "rng_0.pt").is_file() and (checkpoint / "rng_1.pt").is_file()
    train("--resume", str(checkpoint), "--override", f"output_dir={tmp_path / 'resumed'}")
    final = load_file(str(tmp_path / "run" / "checkpoints" / "step_0000003" / "model.safetensors"))
    again = load_file(str(tmp_path / "resumed" / "checkpoints" / "step_0000003" / "model.safetensors"))
    assert all(torch.equal(final[k], again[k]) for k in final)
