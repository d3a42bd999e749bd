"""The AVIF-restoration trainer end to end on a few real pairs: pairs are made with the model's own codec,
every loss is finite, training resumes from its checkpoint, and the export is a model folder that decodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, features

from onestep import api
from onestep.methods.avif_restore import pairs, train

pytestmark = pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF support")


@pytest.fixture(scope="module")
def pair_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    for i in range(3):
        smooth = np.kron(rng.integers(0, 255, (10, 12, 3)), np.ones((32, 32, 1)))
        noisy = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(root / f"img{i}.png")
    out = root / "pairs"
    out.mkdir()
    for i, source in enumerate(pairs.list_images(root)):
        assert pairs.make_pair((i * 25, source, out)) == "made"  # index 0 is held out (every 50th)
    return out


def test_pairs_hold_every_level(pair_folder: Path) -> None:
    with np.load(pair_folder / "00025.npz") as data:
        assert data["target"].shape == (256, 256, 3)
        levels = len(train.avif_restore_model("tiny").codec.levels)
        assert sorted(k for k in data.files if k != "target") == sorted(f"q{i}" for i in range(levels))


def test_train_resume_and_export(pair_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = train.TrainConfig(architecture="tiny", steps=2, batch=2, crop=64, perceptual_batch=1,
                               adversarial_start=1, checkpoint_every=2, validate_every=4)  # fmt: skip
    out = tmp_path / "run"
    train.run(pair_folder, out, config)
    config.steps = 4
    train.run(pair_folder, out, config)
    printed = capsys.readouterr().out
    assert "resumed at step 2" in printed
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert logs[-1]["validation"]  # held-out pair 00000 was scored at every level
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4
    checkpoints = [json.loads(line.split(": ", 1)[1]) for line in printed.splitlines() if line.startswith("step ")]
    assert [values["step"] for values in checkpoints] == [1, 3]  # each run's last step (0-based)
    for values in checkpoints:
        assert all(np.isfinite(values[k]) for k in ("pixel", "colour", "enl0", "g_adv", "d"))
    folder = tmp_path / "model"
    train.export(out, folder, pair_folder, hours=0.01)
    assert json.loads((folder / "training.json").read_text())["loss_networks"] == ["efficientnet-lite0"]
    model = api.load_model(folder)
    image = np.array(Image.open(pair_folder.parent / "img1.png"))[:96, :128]
    decoded = api.decompress(model, api.compress(model, image))
    assert decoded.shape == (3, 96, 128) and decoded.dtype == torch.uint8
