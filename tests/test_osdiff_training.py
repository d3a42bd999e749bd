"""OSDiff's training task on the engine with the tiny architecture: finite losses in every phase, the right
parts move, the discriminator's gradient reaches the generator, exact resume, two-process DDP, presets."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_train_support import one_thread, tiny_config, write_images  # noqa: F401 - one_thread is autouse

from onestep.methods.registry import get_method
from onestep.train.config import load_config
from onestep.train.engine import Trainer


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("osdiff_train") / "images", 4, size=(64, 64))


def osdiff_config(tmp_path, images, **osdiff):
    return tiny_config(
        tmp_path,
        images,
        task="osdiff",
        model={"config": None, "method": "osdiff", "arch": "tiny"},
        data={"crop": 64, "size": 64, "batch_size": 2, "schedule": {"resize": 0.0, "crop": 1.0, "full": 0.0}},
        osdiff=osdiff,
        optim={"grad_clip": 1.0},
        train={"steps": 3, "checkpoint_every": 2, "export": False},
    )


def test_every_phase_trains_its_parts_and_resume_is_exact(tmp_path, images):
    config = osdiff_config(tmp_path, images)
    trainer = Trainer(config)
    task = trainer.unwrapped
    pipeline = task.pipeline
    frozen = {
        k: v.clone() for k, v in pipeline.state_dict().items() if k.startswith(("autoencoder.", "generator.unet."))
    }
    control = {k: v.clone() for k, v in pipeline.generator.control.state_dict().items()}
    quantiles = pipeline.codec.z_model.quantiles.detach().clone()
    head = {k: v.clone() for k, v in task.discriminator.head.state_dict().items()}
    full = trainer.run()
    for key in ("latent_mse", "bpp", "guide_mse", "adversarial", "aux_loss", "discriminator"):
        assert math.isfinite(full[key]), key
    after = pipeline.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in frozen.items()), "the VAE and the SD UNet stay frozen"
    assert any(not torch.equal(v, pipeline.generator.control.state_dict()[k]) for k, v in control.items())
    assert not torch.equal(quantiles, pipeline.codec.z_model.quantiles), "the aux step moves the quantiles"
    assert any(not torch.equal(v, task.discriminator.head.state_dict()[k]) for k, v in head.items())
    config["output_dir"] = str(tmp_path / "resumed")
    resumed = Trainer(config, resume=tmp_path / "run" / "checkpoints" / "step_0000002").run()
    assert resumed == full


def test_the_generator_phase_gets_the_discriminators_gradient(tmp_path, images):
    """With every other loss weight zero, the generator phase's gradient is the adversarial term's alone."""
    config = osdiff_config(tmp_path, images, latent=0.0, rate=0.0, guide=0.0, adversarial=1.0)
    trainer = Trainer(config)
    task = trainer.unwrapped
    batch = next(trainer._batches())
    loss, logs = task(batch, 0, "generator")
    loss.backward()
    grads = [p.grad for p in trainer.groups["generator"] if p.grad is not None]
    assert logs["adversarial"] > 0 and grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_reference_noise_input_option(tmp_path, images):
    config = osdiff_config(tmp_path, images, noise_input="noised-latent")
    config["train"]["steps"] = 1
    trainer = Trainer(config)
    assert trainer.unwrapped.pipeline.codec.noise_input == "noised-latent"
    assert math.isfinite(trainer.run()["latent_mse"])


@pytest.mark.parametrize("preset", ["lambda1", "lambda2", "lambda1-multi-gpu"])
def test_presets_load(preset):
    config = load_config(get_method("osdiff").config_path(preset))
    assert config["task"] == "osdiff" and config["optim"]["grad_clip"] == 1.0
    assert config["osdiff"]["rate"] == (2.0 if preset == "lambda2" else 1.0)


def test_two_process_ddp_trains_and_resumes_exactly(tmp_path, images):
    config = osdiff_config(tmp_path, images)
    config["train"].update(steps=3, checkpoint_every=1, threads=1)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "onestep.cli", "train"]

    def train(*extra: str) -> None:
        done = subprocess.run([*launch, str(path), *extra], env=env, capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stderr[-3000:]

    train()
    final = load_file(str(tmp_path / "run" / "checkpoints" / "step_0000003" / "model.safetensors"))
    first = str(tmp_path / "run" / "checkpoints" / "step_0000001")
    train("--resume", first, "--override", f"output_dir={tmp_path / 'resumed'}")
    again = load_file(str(tmp_path / "resumed" / "checkpoints" / "step_0000003" / "model.safetensors"))
    assert final.keys() == again.keys() and all(torch.equal(final[k], again[k]) for k in final)
