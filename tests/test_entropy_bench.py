"""`onestep bench entropy`: runs, round-trips, and writes the JSON the lead asked for."""

import json

from onestep.cli import main
from onestep.entropy import gaussian_tables


def test_bench_entropy_writes_json(tmp_path, capsys):
    out = tmp_path / "bench" / "entropy.json"
    assert main(["bench", "entropy", "--symbols", "5000", "--repeats", "1", "-o", str(out), "--note", "test"]) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["torch_threads"] >= 1 and machine["cpu"]
    assert set(machine["versions"]) == {"constriction", "numpy", "torch"}
    assert report["notes"][0] == "test"
    assert report["table_build"]["sha256"] == gaussian_tables().sha256()
    random = report["random_indices"]
    assert random["symbols"] == 5000 and random["bytes"] > 0 and random["decode"]["wall_ms"] > 0
    image = report["image"]
    assert image["y_full_range"]["shape"] == [128, 32, 48] and image["y_full_range"]["symbols"] == 196608
    assert image["y_small_scales"]["bytes"] < image["y_full_range"]["bytes"]
    assert image["z"]["indices"] == 96 and image["z"]["bytes"] == 168


def test_bench_rejects_bad_options(capsys):
    assert main(["bench", "entropy", "--repeats", "0"]) == 1
    assert "must be positive" in capsys.readouterr().err
