"""Finding and safely reading the published weight files of LPIPS, DISTS and the FID Inception.

Nothing is downloaded. A file is looked up by its published name in, in order: the folder given on
the command line (`--metric-weights`), `$ONESTEP_METRIC_WEIGHTS`, and the torch hub cache
(`$TORCH_HOME/hub/checkpoints`, where torchvision and pytorch-fid put their downloads). Files are
read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import ModelError

# what -> (accepted file names, where the file comes from)
PUBLISHED_WEIGHTS: dict[str, tuple[tuple[str, ...], str]] = {
    "alexnet": (("alexnet-owt-7be5be79.pth",), "torchvision AlexNet ImageNet weights"),
    "vgg16": (("vgg16-397923af.pth",), "torchvision VGG16 ImageNet weights"),
    "lpips-alex": (("alex.pth", "lpips_alex.pth"), "LPIPS v0.1 linear heads for AlexNet (lpips/weights/v0.1)"),
    "lpips-vgg": (("vgg.pth", "lpips_vgg.pth"), "LPIPS v0.1 linear heads for VGG (lpips/weights/v0.1)"),
    "dists": (("DISTS_weights.pt", "dists_weights.pt"), "DISTS alpha/beta (weights.pt of DISTS_pytorch, renamed)"),
    "inception": (
        ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth"),
        "FID Inception-v3 (pytorch-fid or torch-fidelity release)",
    ),
}


class MissingWeightsError(ModelError):
    """A published metric's weight file is not on this machine."""


def search_dirs(extra: str | os.PathLike[str] | None = None) -> list[Path]:
    dirs = [Path(extra)] if extra else []
    if os.environ.get("ONESTEP_METRIC_WEIGHTS"):
        dirs.append(Path(os.environ["ONESTEP_METRIC_WEIGHTS"]))
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def find_weights(*whats: str, extra: str | os.PathLike[str] | None = None) -> list[Path]:
    """Paths of published weight files; one MissingWeightsError naming every missing file otherwise."""
    dirs = search_dirs(extra)
    found, missing = [], []
    for what in whats:
        names, source = PUBLISHED_WEIGHTS[what]
        paths = [folder / name for folder in dirs for name in names if (folder / name).is_file()]
        if paths:
            found.append(paths[0])
        else:
            missing.append(f"{' or '.join(names)} ({source})")
    if missing:
        raise MissingWeightsError(f"{'; '.join(missing)}: not found in {', '.join(str(d) for d in dirs)}")
    return found


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict read without unpickling arbitrary objects."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged or unsafe files
        raise ModelError(f"cannot read {path}: {e}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a state dict of tensors")
    return state
