"""Stage-II training (DMD + diffusion GAN + pixel loss) on CPU: the OneDC structure at test size (KL VAE,
OneDC codec, SD UNet generator with LoRA) and a tiny random teacher UNet on its 4-channel latent."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file
from test_train_support import save_tiny_teacher, tiny_config, write_images

from onestep.errors import ConfigError
from onestep.train.engine import Trainer
from onestep.train.score import Denoiser, load_unet


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage2")
    return write_images(root / "images", 4, size=(64, 64)), save_tiny_teacher(root / "teacher", channels=4)


def stage2_config(tmp_path, images, teacher, **stage2):
    return tiny_config(
        tmp_path,
        images,
        task="stage2",
        model={"config": None, "method": "onedc", "arch": "tiny"},
        data={"crop": 64, "size": 64, "batch_size": 2},
        stage2={"teacher": str(teacher), "gen_update_ratio": 2, "head_downsample": False, **stage2},
        train={"steps": 3, "checkpoint_every": 2, "export": False},
    )


def test_stage2_updates_the_right_parts_and_resumes_exactly(tmp_path, setup):
    """DMD2 discriminator (head on the fake score net); generator steps 0 and 2, guidance steps 0, 1, 2."""
    images, teacher = setup
    config = stage2_config(tmp_path, images, teacher)
    trainer = Trainer(config)
    task = trainer.unwrapped
    codec_before = {k: v.clone() for k, v in task.pipeline.codec.state_dict().items()}
    real_before = {k: v.clone() for k, v in task.real.state_dict().items()}
    lora_before = {k: v.clone() for k, v in task.pipeline.generator.state_dict().items() if "lora_B" in k}
    full = trainer.run()
    for key in ("dm", "gan_generator", "l1", "bpp", "guidance_loss", "fake_score", "classifier"):
        assert math.isfinite(full[key]), key
    assert all(torch.equal(v, task.pipeline.codec.state_dict()[k]) for k, v in codec_before.items()), "codec frozen"
    assert all(torch.equal(v, task.real.state_dict()[k]) for k, v in real_before.items()), "teacher frozen"
    lora_after = task.pipeline.generator.state_dict()
    assert any(not torch.equal(v, lora_after[k]) for k, v in lora_before.items()), "the LoRA adapters train"
    config["output_dir"] = str(tmp_path / "resumed")
    resumed = Trainer(config, resume=tmp_path / "run" / "checkpoints" / "step_0000002").run()
    assert resumed == full


def test_osdiff_discriminator_with_guidance_embeddings(tmp_path, setup):
    images, teacher = setup
    path = tmp_path / "embeddings.safetensors"
    save_file({"uncond": torch.randn(3, 32), "cond": torch.randn(3, 32)}, str(path))
    config = stage2_config(tmp_path, images, teacher, discriminator="latent_unet", embeddings=str(path))
    config["train"]["steps"] = 1
    trainer = Trainer(config)
    assert trainer.unwrapped.discriminator_unet is not None
    logs = trainer.run()
    assert math.isfinite(logs["dm"]) and math.isfinite(logs["classifier"])
    save_file({"uncond": torch.randn(3, 16)}, str(path))
    with pytest.raises(ConfigError, match="width"):
        Trainer(config)


def test_denoiser_schedule_round_trip(setup):
    _, teacher = setup
    for prediction in ("epsilon", "v_prediction"):
        denoiser = Denoiser(load_unet(teacher), prediction, 0.00085, 0.012, 1000)
        x0, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)  # the teacher's 4-channel latent
        t = torch.tensor([20, 640])
        x_t = denoiser.add_noise(x0, noise, t)
        assert torch.allclose(denoiser.x0(x_t, denoiser.target(x0, noise, t), t), x0, atol=1e-4)
