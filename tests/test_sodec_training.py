"""SODEC's training tasks on the tiny model: each stage trains exactly its parts with finite losses, lambda
follows the annealing schedule, a resumed run continues exactly, both discriminators fine-tune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from test_train_support import write_images

from onestep.errors import ConfigError
from onestep.methods.sodec.training import TRAINED, rate_weight
from onestep.train.config import load_config, merge, task_defaults
from onestep.train.engine import Trainer


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("sodec") / "images", 4, size=(64, 64))


def sodec_config(tmp_path: Path, images: Path, task: str, **sections: Any) -> dict[str, Any]:
    config = task_defaults(task, "sodec")
    merge(config, {
        "output_dir": str(tmp_path / task),
        "model": {"method": "sodec", "arch": "tiny"},
        "data": {"train": [str(images)], "crop": 64, "size": 64, "batch_size": 2,
                 "schedule": {"resize": 0.0, "crop": 1.0, "full": 0.0}},
        "optim": {"lr": 1e-3, "warmup": 1},
        "train": {"steps": 1, "log_every": 1, "checkpoint_every": 100, "progress": False, "export": False},
        "loss": {"perceptual": 0.0},
        "sodec": {"backbone_weights": "none", "rate": {"start": 0.1, "end": 0.8, "levels": 4, "steps_per_level": 1}},
    })  # fmt: skip
    for key, value in sections.items():
        merge(config, {key: value})
    return config


def _trained(name: str, stage: str) -> bool:
    return any(part in name if part.startswith(".") else name.startswith(part) for part in TRAINED[stage])


@pytest.mark.parametrize("stage", ["stage1", "stage2", "stage3"])
def test_each_stage_trains_exactly_its_parts(tmp_path: Path, images: Path, stage: str) -> None:
    torch.manual_seed(0)
    trainer = Trainer(sodec_config(tmp_path, images, stage))
    pipeline = trainer.unwrapped.pipeline
    before = {n: p.detach().clone() for n, p in pipeline.named_parameters()}
    logs = trainer.run()
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs
    changed = {n for n, p in pipeline.named_parameters() if not torch.equal(p, before[n])}
    frozen = {n for n in before if not _trained(n, stage)}
    assert changed and not changed & frozen, sorted(changed & frozen)[:5]
    parts = {n.split(".")[1] for n in changed if n.startswith(("codec.", "conditioner."))}
    expected = {
        "stage1": {"encoder", "hyper_analysis", "z_model", "mean_synthesis", "scale_synthesis", "fidelity_decoder"},
        "stage2": {"side_synthesis", "transform", "fidelity_decoder", "projector"},
    }.get(stage, {"encoder", "z_model", "side_synthesis", "transform", "fidelity_decoder", "projector"})
    assert expected <= parts, expected - parts
    assert not any(n.startswith(("conditioner.backbone.", "autoencoder.")) for n in changed)  # F, D_m never
    unet = {n for n in changed if n.startswith("generator.")}
    assert all(".lora_" in n for n in unet) and bool(unet) == (stage != "stage1")
    assert ("bpp" in logs) and (logs["lambda"] == {"stage1": 0.1, "stage2": 0.0}.get(stage, 0.1))
    assert ("align" in logs) == (stage == "stage3")


def test_lambda_rises_level_by_level() -> None:
    rate = {"start": 0.5, "end": 4.0, "levels": 4, "steps_per_level": 10, "begin": 5}
    values = [rate_weight(rate, "stage3", step) for step in (0, 14, 15, 24, 25, 35, 45, 10_000)]
    assert values == pytest.approx([0.5, 0.5, 1.0, 1.0, 2.0, 4.0, 4.0, 4.0])
    assert rate_weight(rate, "stage1", 99) == 0.5 and rate_weight(rate, "finetune", 0) == 4.0
    assert rate_weight(rate, "stage2", 3) == 0.0
    with pytest.raises(ConfigError, match="start <= end"):
        load_config(None, ["task=stage3", "model.method=sodec", "data.train=x", "sodec.rate.start=10"])


def test_stage3_logs_the_schedule_and_resumes_exactly(tmp_path: Path, images: Path) -> None:
    config = sodec_config(tmp_path, images, "stage3", train={"steps": 3, "checkpoint_every": 2})
    trainer = Trainer(config)
    lambdas = []
    original = trainer.train_step

    def step(batch: torch.Tensor) -> dict[str, float]:
        logs = original(batch)
        lambdas.append(logs["lambda"])
        return logs

    trainer.train_step = step  # type: ignore[method-assign]
    uninterrupted = trainer.run()
    assert lambdas == pytest.approx([0.1, 0.2, 0.4])  # geometric levels 0.1 .. 0.8, one step each
    final = load_file(str(tmp_path / "stage3" / "checkpoints" / "step_0000003" / "model.safetensors"))
    config["output_dir"] = str(tmp_path / "resumed")
    resumed = Trainer(config, resume=tmp_path / "stage3" / "checkpoints" / "step_0000002").run()
    assert resumed["loss"] == uninterrupted["loss"] and resumed["bpp"] == uninterrupted["bpp"]
    again = load_file(str(tmp_path / "resumed" / "checkpoints" / "step_0000003" / "model.safetensors"))
    assert final.keys() == again.keys() and all(torch.equal(final[k], again[k]) for k in final)


@pytest.mark.parametrize("discriminator", ["patchgan", "latent"])
def test_gan_finetune(tmp_path: Path, images: Path, discriminator: str) -> None:
    gan = {"discriminator": discriminator, "latent_encoder": "tiny" if discriminator == "latent" else None}
    trainer = Trainer(sodec_config(tmp_path, images, "finetune", sodec={"gan": gan}))
    critic = trainer.unwrapped.discriminator
    before = {n: p.detach().clone() for n, p in critic.named_parameters()}
    logs = trainer.run()
    assert {"gan_g", "gan_d", "aux", "align"} <= logs.keys() and logs["lambda"] == 0.8
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert any(not torch.equal(p, before[n]) for n, p in critic.named_parameters())  # the discriminator trains
