"""The codec community's perceptual metrics: SSIMULACRA2 and Butteraugli (what libjxl and libaom tune against).

- SSIMULACRA2 (version 2.1, Jon Sneyers): our torch port of libjxl's `tools/ssimulacra2.cc`
  (`ssimulacra2.py`); validated against the reference C++ (see the README's Evaluate section).
  Score: 100 for identical images, about 90 visually lossless, 50 medium quality, negative for very
  strong distortion; higher is better.
- Butteraugli: the reference `butteraugli_main` of libjxl (Debian: libjxl-devtools), run on PNG files;
  we record its 3-norm (libjxl's "pnorm", a mean-like summary of the distance map; lower is better).
  Without the tool the metric is skipped with that reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import OneStepError
from ..images import encode_png
from .metrics import ImageMetric, MetricInfo
from .ssimulacra2 import Ssimulacra2

BUTTERAUGLI_TOOL = "butteraugli_main"


class ToolMissingError(OneStepError):
    """An external metric tool is not installed."""


class Ssimulacra2Metric(ImageMetric):
    def __init__(self, info: MetricInfo, device: str = "cpu"):
        self.info = info
        self.score = Ssimulacra2(device)

    def prepare(self, reference: torch.Tensor) -> Any:
        return self.score.prepare(reference)

    def measure(self, prepared: Any, reconstruction: torch.Tensor) -> float:
        return self.score.measure(prepared, reconstruction)


def butteraugli_tool() -> str:
    path = shutil.which(BUTTERAUGLI_TOOL)
    if path is None:
        raise ToolMissingError(f"{BUTTERAUGLI_TOOL} not found on PATH (Debian: apt-get install libjxl-devtools)")
    return path


def butteraugli_version(tool: str) -> str:
    """The Debian package version of the tool where dpkg knows it, else the tool's path."""
    try:
        owner = subprocess.run(["dpkg", "-S", tool], capture_output=True, text=True, timeout=30).stdout
        package = owner.split(":")[0].strip()
        version = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, timeout=30
        ).stdout
        return f"{package} {version}" if package and version else tool
    except (OSError, subprocess.SubprocessError):
        return tool


def run_butteraugli(tool: str, reference: Path, distorted: Path) -> tuple[float, float]:
    """(max-norm, 3-norm) of butteraugli_main on two image files."""
    result = subprocess.run([tool, str(reference), str(distorted)], capture_output=True, text=True, timeout=600)
    max_norm = re.match(r"\s*([0-9.eE+-]+)", result.stdout)
    three_norm = re.search(r"3-norm:\s*([0-9.eE+-]+)", result.stdout)
    if result.returncode != 0 or max_norm is None or three_norm is None:
        raise OneStepError(f"{tool} failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    return float(max_norm.group(1)), float(three_norm.group(1))


class ButteraugliMetric(ImageMetric):
    """Butteraugli 3-norm by the reference tool; both images go through lossless PNG files."""

    def __init__(self, info: MetricInfo):
        self.info = info
        self.tool = butteraugli_tool()
        self.version = butteraugli_version(self.tool)

    def measure(self, prepared: Any, reconstruction: torch.Tensor) -> float:
        with tempfile.TemporaryDirectory(prefix="onestep-butteraugli-") as folder:
            reference, distorted = Path(folder) / "reference.png", Path(folder) / "distorted.png"
            reference.write_bytes(encode_png(prepared))
            distorted.write_bytes(encode_png(reconstruction))
            return run_butteraugli(self.tool, reference, distorted)[1]
