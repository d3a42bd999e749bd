import argparse
import json
import mmap
import time

import pytest
import torch

from onestep import cli
from onestep.bench.pipeline import PeakMemory, _parse_size, _rss_bytes
from onestep.errors import ConfigError
from onestep.methods.onedc.model import onedc_tiny


def test_bench_pipeline_tiny_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "pipeline", "--method", "onedc", "--preset", "tiny", "--size", "128x64"]
    argv += ["--dtypes", "float32,bfloat16", "-o", str(out)]
    assert cli.main(argv) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert report["image"] == {"width": 128, "height": 64} and report["weights"] == "random"
    assert any(note.startswith("random weights") for note in report["notes"])
    assert report["method"] == "onedc" and report["arch"] == "tiny" and report["arguments"] == {"lora_rank": 0}
    assert report["parameters"]["total"] == onedc_tiny(lora_rank=0).num_parameters()  # timed merged
    for name in ("float32", "bfloat16"):
        run = report["runs"][name]
        assert run["sections"]["z"] == 4  # 1 x 2 positions of 14 bits
        assert run["payload_bytes"] == sum(run["sections"].values())
        for phase in ("encode", "decode"):
            assert run[phase]["wall_s"] > 0 and run[phase]["cpu_s"] > 0
            assert run[phase]["peak_rss_mb"] >= run[phase]["rss_start_mb"] > 0
    assert report["runs"]["float32"]["max_abs_diff_vs_float32"] == 0


def test_bench_pipeline_times_a_model_folder_on_an_image(tmp_path):
    from tiny import save_tiny_model

    from onestep.images import write_png

    folder = save_tiny_model(tmp_path / "model")
    write_png(tmp_path / "in.png", torch.randint(0, 256, (3, 70, 90), dtype=torch.uint8))
    out = tmp_path / "bench.json"
    argv = ["bench", "pipeline", "--model", str(folder), "--image", str(tmp_path / "in.png"), "--dtypes", "float32"]
    assert cli.main([*argv, "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["image"] == {"width": 90, "height": 70} and report["weights"] == str(folder)
    assert not any(note.startswith("random weights") for note in report["notes"])  # these weights were given
    assert report["method"] == "tiny" and report["runs"]["float32"]["decode"]["wall_s"] > 0


def test_peak_memory_sees_a_temporary_allocation():
    size = 64 * 2**20
    with PeakMemory("cpu") as peak:
        # A fresh anonymous mapping: malloc may hand out pages that are already resident (a long test process
        # has freed plenty), which the resident-set counter would not see grow.
        block = mmap.mmap(-1, size)
        for offset in range(0, size, 4096):
            block[offset] = 1  # touch every page so it is resident
        time.sleep(0.05)  # ten sampling periods: seen even where the kernel's high-water mark cannot be reset
        held = _rss_bytes() - peak.start
        block.close()
    if held < 0.9 * size:
        # CI once ran on a machine whose resident-set counter did not show the block while it was held; there
        # nothing can see it, so what is under test (PeakMemory keeps what the counter showed) is not observable.
        pytest.skip(f"this machine's resident-set counter showed {held / 2**20:.0f} MiB of a held 64 MiB block")
    result = peak.result()
    assert result["peak_rss_mb"] - result["rss_start_mb"] >= 0.9 * size / 2**20


def test_presets_are_built_from_the_registry():
    from onestep.bench.pipeline import settings
    from onestep.methods.registry import get_method

    method = get_method("onedc")
    for preset, values in method.bench.items():
        assert values["arch"] in method.architectures, preset
    args = argparse.Namespace(method="onedc", model=None, preset="full", arch="tiny", arg=["lora_rank=4"])
    args.size = args.dtypes = args.mode = None
    chosen = settings(args)
    assert chosen == {
        "method": "onedc",
        "arch": "tiny",
        "size": "768x512",
        "dtypes": "float32,bfloat16",
        "mode": "normal",
        "kwargs": {"lora_rank": 4},
    }
    with pytest.raises(ConfigError, match="no bench preset"):
        settings(argparse.Namespace(**{**vars(args), "preset": "huge"}))
    with pytest.raises(ConfigError, match="exactly one"):
        settings(argparse.Namespace(**{**vars(args), "model": "some/folder"}))


def test_bad_arguments():
    assert _parse_size("768x512") == (768, 512)
    with pytest.raises(ConfigError):
        _parse_size("768")
    assert cli.main(["bench", "pipeline", "--method", "onedc", "--arch", "tiny", "--dtypes", "float16"]) == 1
    assert cli.main(["bench", "pipeline", "--method", "onedc", "--arch", "huge"]) == 1
