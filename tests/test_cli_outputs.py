"""A user's files are sacred: every refusal of an output path, and OS errors (read-only and full filesystems,
names too long, folders in the way) as one line each, through the CLI in a fresh process. Inputs stay
byte-identical, no temporary file is left behind, and in a batch the other files still go through.

Read-only and full filesystems are real: small tmpfs mounts made in a private mount namespace (`unshare`), so
nothing outside the test process sees them; the tests skip with a message where the machine does not allow it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import _CHILD, CliResult, run_cli, save_tiny_model

RNG = np.random.default_rng(5)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _one_line(done: CliResult, *fragments: str) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("outputs")
    model = save_tiny_model(root / "model")
    photos = root / "photos"
    photos.mkdir()
    Image.fromarray(RNG.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(photos / "a.png")
    Image.fromarray(RNG.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(photos / "b.png")
    (root / "existing").mkdir()
    (root / "existing/a.osc").write_bytes(b"the user's own file")
    (root / "existing/a.png").write_bytes(b"the user's own picture")
    (root / "pngs_only").mkdir()
    shutil.copy(photos / "a.png", root / "pngs_only/a.png")
    (root / "blocked").mkdir()
    (root / "blocked/a.osc").mkdir()  # a folder where the output file would go
    m = ("--model", model)
    stream = root / "streams/a.osc"
    commands = {
        "make_stream": ["compress", photos / "a.png", "-o", stream, *m],
        "onto_itself": ["compress", photos / "a.png", "-o", photos / "a.png", *m],
        "image_suffix": ["compress", photos / "a.png", "-o", root / "a.png", *m],
        "existing": ["compress", photos / "a.png", "-o", root / "existing/a.osc", *m],
        "existing_png": ["decompress", stream, "-o", root / "existing/a.png", *m],
        "jpeg_name": ["decompress", stream, "-o", root / "a.jpg", *m],
        "stream_as_png_onto_itself": ["decompress", root / "renamed.png", "-o", root / "renamed.png", *m],
        "two_into_file": ["compress", photos / "a.png", photos / "b.png", "-o", root / "two.osc", *m],
        "slash_is_folder": ["compress", photos / "a.png", "-o", f"{root / 'fresh'}/", *m],
        "pngs_to_decompress": ["decompress", root / "pngs_only", "-o", root / "x", *m],
        "blocked_batch": ["compress", photos, "-o", root / "blocked", *m],
        "long_name": ["compress", photos / "a.png", "-o", root / ("n" * 300 + ".osc"), *m],
        "force": ["compress", photos / "a.png", "-o", root / "existing/a.osc", "--force", *m],
    }
    shutil.copy(photos / "a.png", root / "renamed.png")
    before = _digest(photos)
    results = dict(zip(commands, run_cli(list(commands.values()), threads=1)))
    return root, photos, before, results


def test_inputs_untouched_and_no_temporaries(session) -> None:
    root, photos, before, _ = session
    assert _digest(photos) == before
    assert _temporaries(root) == []


def test_output_refusals(session) -> None:
    root, _, _, results = session
    assert results["make_stream"].status == 0, results["make_stream"].stderr
    _one_line(results["onto_itself"], "must end in .osc")
    _one_line(results["image_suffix"], "must end in .osc")
    _one_line(results["existing"], "existing/a.osc: exists (use --force to overwrite)")
    assert (root / "existing/a.osc").read_bytes() != b"the user's own file"  # the --force run, after
    _one_line(results["existing_png"], "existing/a.png: exists")
    assert (root / "existing/a.png").read_bytes() == b"the user's own picture"
    _one_line(results["jpeg_name"], "must end in .png")
    assert not (root / "a.jpg").exists()
    _one_line(results["stream_as_png_onto_itself"], "is an input file")
    _one_line(results["two_into_file"], "two.osc looks like a file name, but there are several inputs")
    assert not (root / "two.osc").exists()
    for name in ("onto_itself", "image_suffix", "existing", "existing_png", "jpeg_name", "two_into_file"):
        assert results[name].status == 1, name
    assert results["force"].status == 0


def test_trailing_slash_means_a_folder(session) -> None:
    root, _, _, results = session
    assert results["slash_is_folder"].status == 0, results["slash_is_folder"].stderr
    assert (root / "fresh/a.osc").is_file()


def test_a_folder_without_streams_says_what_it_wants(session) -> None:
    _, _, _, results = session
    _one_line(results["pngs_to_decompress"], "pngs_only: no .osc files in this folder")


def test_os_errors_are_one_line_and_the_batch_goes_on(session) -> None:
    root, _, _, results = session
    done = results["blocked_batch"]
    assert done.status == 1 and "Traceback" not in done.stderr
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 2 and "blocked/a.osc: Is a directory" in errors[0] and "1 of 2 files failed" in errors[1]
    assert (root / "blocked/b.osc").is_file()
    _one_line(results["long_name"], "File name too long")


# --- real read-only and full filesystems ----------------------------------------------------------------------

_NAMESPACE = """
set -e
mount -t tmpfs -o ro,size=64k tmpfs "$1"
mount -t tmpfs -o size=12k tmpfs "$2"
exec "$3" -c "$4" "$5" "$6"
"""


def _run_in_namespace(read_only: Path, full: Path, commands: list[list[object]]) -> tuple[list[CliResult], dict]:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here: cannot mount a private read-only or full tmpfs")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"this machine does not allow private mounts: {probe.stderr.decode().strip()}")
    child = _CHILD.replace(
        "json.dump(results, sys.__stdout__)",
        "import os\nlisting = {d: sorted(os.listdir(d)) for d in sys.argv[1:]}\n"
        "json.dump({'results': results, 'listing': listing}, sys.__stdout__)",
    )
    argvs = json.dumps([[str(a) for a in command] for command in commands])
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", _NAMESPACE, "sh", read_only, full, sys.executable, child,
         read_only, full],
        input=argvs, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs in a private namespace here: {done.stderr.strip()[-200:]}")
    out = json.loads(done.stdout)
    return [CliResult(**r) for r in out["results"]], out["listing"]


def test_read_only_and_full_filesystems(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "model")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(RNG.integers(0, 256, (125, 187, 3), dtype=np.uint8)).save(photos / "big.png")  # a ~70 kB PNG
    Image.fromarray(RNG.integers(0, 256, (2, 2, 3), dtype=np.uint8)).save(photos / "small.png")
    read_only, full = tmp_path / "ro", tmp_path / "full"
    read_only.mkdir()
    full.mkdir()
    before = _digest(photos)
    m = ("--model", model)
    results, listing = _run_in_namespace(
        read_only,
        full,
        [
            ["compress", photos / "small.png", "-o", read_only / "small.osc", *m],
            ["compress", photos / "small.png", "-o", read_only / "new/folder/small.osc", *m],
            # the reconstruction of big.png does not fit in 12 kB: neither file may stay; small.png goes through
            ["compress", photos, "-o", full, "--reconstruction", full, *m],
        ],
    )
    ro_file, ro_folder, batch = results
    assert ro_file.status == 1 and ro_folder.status == 1
    _one_line(ro_file, "small.osc", "Read-only file system")
    _one_line(ro_folder, "Read-only file system")
    assert batch.status == 1 and "Traceback" not in batch.stderr, batch.stderr
    errors = batch.stderr.strip().splitlines()
    assert len(errors) == 2 and "No space left on device" in errors[0] and "1 of 2 files failed" in errors[1]
    assert listing[str(read_only)] == []
    assert listing[str(full)] == ["small.osc", "small.png"]  # big.osc went with its reconstruction; no .tmp
    assert _digest(photos) == before
