"""Training tasks: each brings its own typed config sections and checks; methods name the tasks they train with."""

import pytest
import yaml

from onestep.errors import ConfigError
from onestep.methods.onedc.training import STAGE1 as ONEDC_STAGE1
from onestep.methods.registry import get_method
from onestep.train.config import config_file, load_config, task_defaults
from onestep.train.stage1 import TASK as STAGE1
from onestep.train.stage2 import TASK as STAGE2
from onestep.train.tasks import TASKS, find_task


def test_tasks_own_their_sections():
    assert find_task("stage1") is STAGE1 and find_task("stage2") is STAGE2
    assert set(TASKS) == {"stage1", "stage2"}
    assert "stage2" in task_defaults("stage2") and "stage2" not in task_defaults("stage1")
    assert "semantic" in task_defaults("stage1", "onedc") and "semantic" not in task_defaults("stage1")
    with pytest.raises(ConfigError, match="unknown config key 'stage2'"):
        load_config(None, ["data.train=x", "stage2.teacher=t"])  # stage 1 has no stage2 section
    with pytest.raises(ConfigError, match="unknown config key 'semantic'"):
        load_config(None, ["data.train=x", "semantic.weight=1"])  # only OneDC's stage 1 distils semantics
    with pytest.raises(ConfigError, match="unknown config key 'semantic'"):
        load_config(
            None, ["data.train=x", "model.method=onedc", "task=stage2", "stage2.teacher=t", "semantic.weight=1"]
        )


def test_a_method_trains_with_the_tasks_it_lists():
    assert find_task("stage1", "onedc") is ONEDC_STAGE1 and ONEDC_STAGE1 is not STAGE1
    assert find_task("stage2", "onedc") is STAGE2
    with pytest.raises(ConfigError, match="'taef2_latent' has no training task 'stage2'"):
        find_task("stage2", "taef2_latent")
    with pytest.raises(ConfigError, match="unknown task 'stage3'"):
        find_task("stage3")
    config = load_config(None, ["data.train=x", "model.method=onedc", "model.arch=tiny", "model.kwargs={lora_rank: 2}"])
    assert config["task"] == "stage1" and config["model"]["kwargs"] == {"lora_rank": 2}


def test_values_are_typed_by_their_defaults():
    with pytest.raises(ConfigError, match="'train.steps' must be an integer, got 1.5"):
        load_config(None, ["data.train=x", "train.steps=1.5"])
    with pytest.raises(ConfigError, match="'optim.lr' must be a number, got '1e-3'"):
        load_config(None, ["data.train=x", "optim.lr=1e-3"])  # YAML reads 1e-3 (no dot) as a string
    with pytest.raises(ConfigError, match="'data.flip' must be true or false"):
        load_config(None, ["data.train=x", "data.flip=1"])
    config = load_config(None, ["data.train=x", "optim.lr=1", "loss.rate.end=2", "loss.lpips_dir=somewhere"])
    assert config["optim"]["lr"] == 1 and config["loss"]["lpips_dir"] == "somewhere"


def test_stage_numbers_of_older_configs_still_name_their_task(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"stage": 2, "data": {"train": ["x"]}, "stage2": {"teacher": "t"}}))
    assert load_config(path)["task"] == "stage2"
    path.write_text(yaml.safe_dump({"stage": 3, "data": {"train": ["x"]}}))
    with pytest.raises(ConfigError, match="stage must be 1 or 2"):
        load_config(path)


def test_task_checks_reject_what_they_cannot_train():
    with pytest.raises(ConfigError, match="stage2.teacher"):
        load_config(None, ["data.train=x", "task=stage2"])
    with pytest.raises(ConfigError, match="cannot distil semantics"):
        load_config(
            None,
            ["data.train=x", "model.method=onedc", "data.latents=true", "data.schedule.resize=0", "semantic.weight=1"],
        )


def test_method_presets_are_config_arguments(tmp_path):
    assert config_file("onedc:stage1") == get_method("onedc").config_path("stage1")
    assert config_file(str(tmp_path / "a.yaml")) == tmp_path / "a.yaml"
    with pytest.raises(ConfigError, match="no training config 'stage7'"):
        config_file("onedc:stage7")
    config = load_config("onedc:stage2")
    assert config["task"] == "stage2" and config["model"]["method"] == "onedc"
