"""The README's Python snippets run as written, in a fresh folder holding only the image they name."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

README = Path(__file__).parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_the_readme_has_python_snippets() -> None:
    assert _python_blocks()


def test_python_snippets_run_as_written(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for block in _python_blocks():
        done = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300
        )
        assert done.returncode == 0, f"README snippet failed:\n{block}\n{done.stderr[-2000:]}"
