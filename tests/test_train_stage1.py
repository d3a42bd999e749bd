"""Stage-I training on CPU with tiny models: finite losses, exact resume, overfitting one image,
latent-space training on packed latents, the CLI, and the rate-weight warm-up."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_train_support import REPO, tiny_config, write_images

from onestep.api import compress, decompress, load_model
from onestep.autoencoders.space_to_depth import SpaceToDepth
from onestep.cli import main
from onestep.errors import ConfigError, ModelError
from onestep.methods.pipeline import OneStepPipeline
from onestep.train.config import load_config
from onestep.train.engine import Trainer
from onestep.train.losses import RateWeight
from onestep.train.pack import pack_latents


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("images"), 6, size=(80, 72))


def test_onedc_tiny_with_perceptual_semantic_and_validation(tmp_path, images):
    """The real OneDC structure at test size: KL VAE, OneDC codec (y_semantic at /64), SD UNet with LoRA."""
    config = tiny_config(
        tmp_path,
        images,
        model={"config": None, "method": "onedc", "arch": "tiny"},  # OneDC's stage I: semantic distillation
        loss={"perceptual": 0.5, "perceptual_net": "efficientnet"},
        semantic={
            "weight": 0.01,
            "teacher": "efficientnet_kmeans",
            "kmeans": {"codes": 4, "fit_images": 4, "iterations": 2},
            "head": {"dim": 32, "heads": 2, "blocks": 1, "window": 2},
        },
        data={"crop": 64, "size": 64, "batch_size": 2},
        train={"steps": 2},
        validation={"folder": str(images), "every": 2, "max_images": 1},
    )
    trainer = Trainer(config)
    unet = trainer.unwrapped.pipeline.generator.unet
    assert not unet.down_blocks[0].resnets[0].conv1.base_layer.weight.requires_grad, "the UNet base stays frozen"
    assert not any(p.requires_grad for p in trainer.unwrapped.pipeline.autoencoder.parameters())
    logs = trainer.run()
    for key in ("loss", "bpp", "l1", "perceptual", "semantic_ce", "semantic_mse"):
        assert math.isfinite(logs[key]), key
    run = tmp_path / "run"
    exported = OneStepPipeline.from_pretrained(run / "model")
    trained = load_file(str(run / "checkpoints" / "step_0000002" / "model.safetensors"))
    key = "codec.decoder.conv_out.block.1.conv_out.weight"
    assert torch.equal(exported.state_dict()[key], trained[f"pipeline.{key}"])
    assert any(k.startswith("auxiliary.head.") for k in trained), "the Codeformer head is checkpointed"
    assert not any(k.startswith("pipeline.autoencoder.") for k in trained), "frozen parts are not copied"
    assert list((run / "train").glob("events.out.tfevents.*")), "TensorBoard logs are written"
    metrics = trainer.validate()
    assert set(metrics) == {"bpp", "psnr", "ms_ssim", "perceptual"} and all(map(math.isfinite, metrics.values()))
    model = load_model(run / "model")  # what `onestep compress --model` reads
    image = (torch.rand(3, 40, 56) * 255).to(torch.uint8)
    assert decompress(model, compress(model, image)).shape == image.shape


def test_resume_gives_the_same_next_step(tmp_path, images):
    config = tiny_config(tmp_path, images, train={"steps": 3, "checkpoint_every": 2, "export": False})
    uninterrupted = Trainer(config).run()
    final = load_file(str(tmp_path / "run" / "checkpoints" / "step_0000003" / "model.safetensors"))
    config["output_dir"] = str(tmp_path / "resumed")
    resumed_trainer = Trainer(config, resume=tmp_path / "run" / "checkpoints" / "step_0000002")
    assert resumed_trainer.step == 2
    resumed = resumed_trainer.run()
    assert resumed["loss"] == uninterrupted["loss"] and resumed["bpp"] == uninterrupted["bpp"]
    again = load_file(str(tmp_path / "resumed" / "checkpoints" / "step_0000003" / "model.safetensors"))
    assert all(torch.equal(final[k], again[k]) for k in final)
    config["optim"]["lr"] = 2e-4  # a changed learning rate wins over the checkpoint's (lower it and go on)
    config["output_dir"], config["train"]["steps"] = str(tmp_path / "lower"), 4
    assert Trainer(config, resume=tmp_path / "run").run()["lr/main"] == 2e-4


def test_overfits_one_image_with_bounded_rate(tmp_path):
    image = write_images(tmp_path / "one", 1, size=(64, 64), seed=3)
    config = tiny_config(
        tmp_path,
        image,
        data={"crop": 64, "size": 64, "batch_size": 1, "flip": False},
        optim={"lr": 3e-3, "warmup": 1},
        train={"steps": 60, "log_every": 60, "checkpoint_every": 1000, "export": False},
        loss={"rate": {"start": 0.05, "end": 0.05, "warmup_steps": 0}},
    )
    trainer = Trainer(config)
    config["train"]["steps"] = 1  # run the first step alone to read its losses, then go on to step 60
    start = trainer.run()
    config["train"]["steps"] = 60
    end = trainer.run()
    assert end["l1"] < 0.5 * start["l1"], (start, end)
    assert end["bpp"] < start["bpp"] + 0.5 and end["bpp"] < 4, (start, end)


def test_latent_space_training(tmp_path, images):
    autoencoder = SpaceToDepth(8)
    pack_latents([images], tmp_path / "latents", autoencoder, size=64)
    config = tiny_config(
        tmp_path,
        tmp_path / "latents",
        data={"latents": True, "crop": 8, "size": 8, "schedule": {"resize": 0.0}, "batch_size": 2},
        loss={"latent_mse": 1.0},
    )
    config["train"]["mixed_precision"] = "bf16"  # bf16 autocast, as the reference's use_fp16
    logs = Trainer(config).run()
    assert math.isfinite(logs["latent_mse"]) and "l1" not in logs
    config["data"]["train"] = [str(images)]
    with pytest.raises(ConfigError, match="shard"):
        Trainer(config)


def test_latent_training_with_a_teacher_decoder(tmp_path, images):
    autoencoder = SpaceToDepth(8)
    pack_latents([images], tmp_path / "latents", autoencoder, size=64)
    autoencoder.save_pretrained(tmp_path / "teacher")
    config = tiny_config(
        tmp_path,
        tmp_path / "latents",
        data={"latents": True, "crop": 8, "size": 8, "schedule": {"resize": 0.0}, "batch_size": 2},
        loss={"latent_mse": 0.0, "l1": 1.0, "perceptual": 0.0, "teacher_decoder": str(tmp_path / "teacher")},
    )
    config["train"]["steps"] = 1
    first = Trainer(config).run()
    # pixel loss against the teacher's decoding of the true latent, with no images and no latent MSE
    assert math.isfinite(first["l1"]) and "latent_mse" not in first
    config["loss"]["teacher_decoder"] = None
    with pytest.raises(ConfigError, match="teacher_decoder"):
        Trainer(config)


def test_cli_train_with_overrides(tmp_path, images):
    config = tiny_config(tmp_path, images, train={"steps": 2})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--override", "train.steps=1", "-o", "data.batch_size=2"]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["train"]["steps"] == 1 and saved["data"]["batch_size"] == 2
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert main(["train", str(path), "--override", "loss.l2=1"]) == 1  # unknown key: one-line error
    assert main(["train", str(path), "--resume", str(tmp_path / "nothing")]) == 1


def test_rate_weight_warms_up_quadratically_from_step_zero():
    weight = RateWeight(start=1e-4, end=4.6, warmup_steps=4000)
    assert weight(0) == pytest.approx(1e-4), "step 0 uses the start value (the reference used the end)"
    assert weight(2000) == pytest.approx(1e-4 + 0.25 * (4.6 - 1e-4))
    assert weight(4000) == weight(10**6) == pytest.approx(4.6)


def test_shipped_configs_are_valid():
    from onestep.methods.registry import methods

    paths = sorted((REPO / "configs" / "train").glob("*.yaml"))
    assert {p.stem for p in paths} >= {"small", "small_latent"}
    presets = [m.config_path(name) for m in methods().values() for name in m.configs]
    assert {p.parent.parent.name + "/" + p.stem for p in presets} >= {"onedc/stage1", "onedc/stage2"}
    for path in paths + presets:
        config = load_config(path)
        assert config["model"]["factory"] or config["model"]["pretrained"] or config["model"]["method"], path.name
    reference = load_config(methods()["onedc"].config_path("stage1"))
    assert reference["optim"]["lr"] == 5e-5 and reference["train"]["steps"] == 400_000
    assert reference["loss"]["rate"] == {"start": 1e-4, "end": 4.6, "warmup_steps": 4000, "begin": 0}
    assert reference["semantic"]["weight"] == 0.001 and reference["data"]["crop"] == 1024


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'loss.l2'"):
        load_config(None, ["loss.l2=1", "data.train=x"])
    with pytest.raises(ConfigError, match="data.train"):
        load_config(None, [])
    config = load_config(None, ["data.train=[a, b]", "loss.rate.end=2.9"])
    assert config["data"]["train"] == ["a", "b"] and config["loss"]["rate"]["end"] == 2.9


def test_init_loads_a_plain_unet_into_the_lora_wrapped_generator(tmp_path):
    """As the reference's stage I starts from DMD2's plain SD1.5 UNet state dict (a torch file)."""
    from onestep.methods.onedc.model import onedc_tiny
    from onestep.train.build import build_pipeline

    unet = onedc_tiny().generator.unet.state_dict()
    plain = {k.replace(".base_layer.", "."): v + 1 for k, v in unet.items() if "lora_" not in k}
    plain["conv_in.weight"] = torch.zeros(8, 4, 3, 3)  # SD's 4-channel conv_in does not fit: skipped
    torch.save(plain, tmp_path / "unet.bin")
    spec = {
        "factory": "onestep.methods.onedc.model:onedc_tiny",
        "init": [{"path": str(tmp_path / "unet.bin"), "prefix": "generator.unet."}],
    }
    loaded = build_pipeline(spec).generator.unet.state_dict()
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    assert torch.equal(loaded[f"{key}.base_layer.weight"], plain[f"{key}.weight"])
    assert not torch.equal(loaded["conv_in.weight"].flatten()[:4], torch.zeros(4))
    with pytest.raises(ModelError, match="no tensor"):
        build_pipeline({**spec, "init": [{"path": str(tmp_path / "unet.bin"), "prefix": "nothing."}]})
