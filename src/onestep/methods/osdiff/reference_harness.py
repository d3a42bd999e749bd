"""Equivalence harness: runs the public OSDiff code (GitHub cheesejiang/OSDiff) next to ours. Not run by CI.

    python -m onestep.methods.osdiff.reference_harness keys REF_DIR -o benchmarks/osdiff-reference-keys.json
    python -m onestep.methods.osdiff.reference_harness compare REF_DIR --work DIR -o benchmarks/osdiff-equivalence.json

REF_DIR is a checkout of the reference; run this in a throwaway environment outside the repository that has
torch, diffusers, einops, omegaconf and compressai 1.2.4 (the reference's pin) besides onestep. The reference
imports much that only its training and metrics use; `install_stubs` puts empty modules in their place before
importing it. Every patch (nothing else of the reference is changed):

    lpips, pyiqa, thop, cv2, kornia, transformers   metrics / logging / FLOP counting: empty modules
    pytorch_lightning                               training: `LightningModule` = nn.Module, `rank_zero_only`
                                                    = identity, `EPOCH_OUTPUT` = list
    torchvision                                     compressai's dataset registry and ldm's `make_grid` (logging)
    open_clip                                       the text tower is built from ldm's code paths by hand instead
                                                    (`reference_text_embedding`: the same calls as
                                                    `FrozenOpenCLIPEmbedder.encode_with_transformer`)
    torch.utils.tensorboard.SummaryWriter          logging: a no-op class (only built by `OSDiff.__init__`)

`keys` builds the reference's control module (`CDDM`, minus its copy of the base UNet that is not part of
the checkpoint), `LFGCM` and `GuidanceModel` on the meta device and writes every state-dict key, shape and
parameter count. `compare` builds the full reference at random weights, writes them in the release layout
(an ldm `v2-1_512-ema-pruned.ckpt` and a Lightning `lambda_1.ckpt`), imports them with `onestep import
osdiff`, runs both on a small image in float32 on one thread, and writes max abs differences per stage.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

STUBBED = ("lpips", "pyiqa", "thop", "cv2", "kornia", "transformers", "open_clip", "torchvision", "torchvision.utils",
           "torchvision.transforms", "pytorch_lightning", "pytorch_lightning.utilities",
           "pytorch_lightning.utilities.types", "pytorch_lightning.utilities.distributed")  # fmt: skip


def _anything(*args: Any, **kwargs: Any) -> Any:
    return None


def _stub_attribute(attribute: str) -> Any:
    if attribute.startswith("__"):  # module machinery (inspect, importlib) must see a plain module
        raise AttributeError(attribute)
    return _anything


def install_stubs(reference: Path) -> None:
    """Empty modules for what the reference imports only for training, logging and metrics; then make the
    reference importable."""
    for name in STUBBED:
        module = types.ModuleType(name)
        module.__getattr__ = _stub_attribute  # type: ignore[method-assign]
        sys.modules[name] = module
    lightning = sys.modules["pytorch_lightning"]
    lightning.LightningModule = nn.Module  # type: ignore[attr-defined]
    lightning.seed_everything = _anything  # type: ignore[attr-defined]
    sys.modules["pytorch_lightning.utilities.distributed"].rank_zero_only = lambda f: f  # type: ignore[attr-defined]
    sys.modules["pytorch_lightning.utilities.types"].EPOCH_OUTPUT = list  # type: ignore[attr-defined]
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]  # type: ignore[attr-defined]
    sys.modules["torchvision"].utils = sys.modules["torchvision.utils"]  # type: ignore[attr-defined]
    tensorboard = types.ModuleType("torch.utils.tensorboard")
    tensorboard.SummaryWriter = type("SummaryWriter", (), {"__init__": _anything})  # type: ignore[attr-defined]
    sys.modules["torch.utils.tensorboard"] = tensorboard
    sys.path.insert(0, str(reference))


def reference_config(reference: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(reference / "configs/model/osdiff.yaml"))["params"]  # type: ignore[index]


def build_reference_parts(reference: Path) -> dict[str, nn.Module]:
    """The reference's trainable modules (control module, LFGCM, discriminator) with its config."""
    from model.lfgcm import LFGCM
    from model.osdiff import CDDM, GuidanceModel

    params = reference_config(reference)
    control = CDDM(**params["control_stage_config"]["params"])
    return {
        "control_model": control,
        "preprocess_model": LFGCM(**params["preprocess_config"]["params"]),
        "guidance_model": GuidanceModel(),
    }


def _keys(module: nn.Module, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    state = {k: list(v.shape) for k, v in module.state_dict().items() if not k.startswith(skip)}
    parameters = sum(p.numel() for n, p in module.named_parameters() if not n.startswith(skip))
    return {"parameters": parameters, "keys": state}


def dump_keys(reference: Path, output: Path) -> None:
    install_stubs(reference)
    with torch.device("meta"):
        parts = build_reference_parts(reference)
    # CDDM builds a copy of the base UNet only to read its channel counts; it is dropped from the module
    # (`base_model` is a local), so `control_model.*` holds the control encoder and the zero convs.
    result = {
        "source": "github.com/cheesejiang/OSDiff, configs/model/osdiff.yaml",
        "compressai": __import__("compressai").__version__,
        "parts": {name: _keys(module) for name, module in parts.items()},
    }
    output.write_text(json.dumps(result, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys", help="state-dict keys, shapes and parameter counts of the reference")
    keys.add_argument("reference", type=Path)
    keys.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.command == "keys":
        dump_keys(args.reference, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
