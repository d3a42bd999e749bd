"""The header every OneDC harness benchmark's JSON starts with (imported by the scripts in this folder)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch


def run_info(what: str, work: Path, threads: int, phase: str, load_before: float) -> dict[str, Any]:
    """What ran, on which weights and machine, and how busy the machine was before and after `phase`."""
    return {
        "what": what,
        "model": str(work / "onestep-model"),
        "size": "768x512",
        "threads": threads,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        f"load_average_1min_before_{phase}": load_before,
        "load_average_1min_after": os.getloadavg()[0],
    }
