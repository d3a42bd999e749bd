"""Byte-exact `.bin` test vectors made with the OneDC reference's own coder (not run by CI).

    python benchmarks/onedc-bin-vectors.py --reference-src REF/src [--out tests/fixtures/onedc-bin]

REF is a checkout of github.com/onedc-codec/onedc (commit c52af53) whose C++ coder is built into
REF/src/modules/entropy (MLCodec_rans and MLCodec_CXX; its CMake clones pybind11 v2.10.4 from GitHub, so we
compiled rans.cpp + py_rans.cpp and ops.cpp by hand with g++ -O2 -std=c++17 against pybind11 from PyPI).
Only the reference's entropy modules are imported (`modules.entropy.entropy_models`, `modules.entropy.utils`):
nothing is stubbed or patched.

What is the reference's and what is ours:
  - the networks are onestep's `tiny` OneDC (seeded random weights, lora_rank 0): the reference has no tiny
    configuration, and its numerics were compared separately (benchmarks/onedc-reference-equivalence.py);
  - the entropy tables (its `GaussianEncoder.update`), the scale indices (`build_indexes`), the rANS coder
    (`EntropyCoder`), the z packing (the 14-bit big-integer code of `IntraNoAR._compress`, quoted below) and the
    file layout (`encode_i`) are the reference's own.

Writes, per image: NAME.bin (the reference's bytes), NAME.npz (the image, each pass's symbols and table
indices as handed to the reference's coder, the z indices) and vectors.json (hashes and provenance).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from onestep.entropy.gaussian import GaussianConditional  # noqa: E402
from onestep.methods.onedc.codec import as_reference_layout  # noqa: E402
from onestep.methods.onedc.model import onedc_tiny  # noqa: E402
from onestep.methods.onedc.reference_coder import PriorWithCoder  # noqa: E402
from onestep.methods.pipeline import deterministic, pad_image  # noqa: E402

SEED = 0
IMAGES = {"tiny-seed0-72x100": (72, 100, 1), "tiny-seed0-64x64": (64, 64, 2)}  # name: height, width, image seed


def make_image(height: int, width: int, seed: int) -> torch.Tensor:
    """uint8 3 x H x W: a colour ramp with seeded noise (something for every symbol range)."""
    generator = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, width).view(1, 1, width) * torch.linspace(1, 0.3, height).view(1, height, 1)
    noise = torch.rand(3, height, width, generator=generator)
    return (255 * (0.7 * ramp * torch.tensor([1.0, 0.6, 0.3]).view(3, 1, 1) + 0.3 * noise)).round().to(torch.uint8)


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(SEED)
    return onedc_tiny(lora_rank=0).eval()


class ReferenceCoderGaussian(GaussianConditional):
    """Our prior's pass loop, the reference's coder: each pass goes to its C++ encoder as its int16 arrays."""

    def __init__(self, entropy_models: object) -> None:
        super().__init__()
        self.coder = entropy_models.EntropyCoder(False, 1)
        self.reference = entropy_models.GaussianEncoder("gaussian")
        self.reference.update(force=True, entropy_coder=self.coder)
        self.passes: list[tuple[np.ndarray, np.ndarray]] = []

    def scale_index(self, scales: torch.Tensor) -> torch.Tensor:
        return self.reference.build_indexes(scales.float()).long()

    def encoder(self) -> ReferenceCoderGaussian:  # type: ignore[override]
        self.coder.reset()
        self.passes = []
        return self

    def add(self, symbols: torch.Tensor, indexes: torch.Tensor) -> None:
        self.passes.append(
            (symbols.clamp(-30000, 30000).to(torch.int16).numpy(), indexes.to(torch.int16).numpy())
        )  # what `EntropyCoder.encode_with_indexes` hands to C++
        # `GaussianEncoder.encode` minus its `build_indexes`, which `scale_index` above already is
        self.coder.encode_with_indexes(symbols.reshape(-1), indexes.reshape(-1), self.reference.cdf_group_index)

    def finish(self) -> bytes:
        self.coder.flush()
        return self.coder.get_encoded_stream()


def reference_z_bytes(indices: np.ndarray, index_unit_length: int = 14) -> bytes:
    """`IntraNoAR._compress`'s z packing, as the reference writes it."""
    index = indices.reshape(-1)
    index_str = "".join([bin(index[i])[2:].zfill(index_unit_length) for i in range(len(index))])
    num_bytes = (len(index_str) + 7) // 8
    return int(index_str, 2).to_bytes(num_bytes, "big")


def make_vector(model: torch.nn.Module, image: torch.Tensor, entropy_models: object, utils: object) -> dict:
    codec = model.codec
    h, w = image.shape[-2:]
    x = pad_image(image[None].float().div(127.5).sub(1), model.pad_multiple, codec.pad_mode("normal"))
    gaussian = ReferenceCoderGaussian(entropy_models)
    with torch.no_grad(), deterministic():
        latent = model.encode(x)
        y, z = codec.analyse(x, latent)
        _, z_indices = codec.fsq(z)
        z_hat = as_reference_layout(codec.fsq.indices_to_codes(z_indices))  # as the reference's FSQ returns it
        feature, _ = codec._entropy_feature(z_hat)
        y_stream, _ = PriorWithCoder(codec.prior, gaussian).method("compress")(y, feature=feature)
    z_stream = reference_z_bytes(z_indices.numpy())
    data = utils.encode_i(h, w, y_stream, z_stream, b"", 0)
    return {"bin": data, "passes": gaussian.passes, "z_indices": z_indices.numpy().astype(np.int64)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-src", required=True, type=Path, help="the reference's src/ with its coder built")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "onedc-bin")
    args = parser.parse_args()
    sys.path.insert(0, str(args.reference_src))
    from modules.entropy import entropy_models, utils  # the reference's

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model = tiny_model()
    table, _, offsets = ReferenceCoderGaussian(entropy_models).reference.get_cdf_info()
    table, centers = np.ascontiguousarray(table).astype(np.int32), -offsets.astype(np.int64)
    record = {
        "reference": "onedc-codec/onedc c52af53, modules/entropy (C++ coder built with g++, pybind11 from PyPI)",
        "model": f"onestep onedc tiny, torch.manual_seed({SEED}), lora_rank 0",
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "reference_table_sha256": hashlib.sha256(table.tobytes()).hexdigest(),
        "vectors": {},
    }
    for name, (height, width, image_seed) in IMAGES.items():
        image = make_image(height, width, image_seed)
        vector = make_vector(model, image, entropy_models, utils)
        (args.out / f"{name}.bin").write_bytes(vector["bin"])
        arrays = {"image": image.numpy(), "z_indices": vector["z_indices"]}
        for k, (symbols, indexes) in enumerate(vector["passes"]):
            arrays[f"symbols_{k}"], arrays[f"indexes_{k}"] = symbols, indexes
        np.savez_compressed(args.out / f"{name}.npz", **arrays)
        record["vectors"][name] = {
            "height": height,
            "width": width,
            "image_seed": image_seed,
            "bytes": len(vector["bin"]),
            "sha256": hashlib.sha256(vector["bin"]).hexdigest(),
            "symbols": int(sum(s.size for s, _ in vector["passes"])),
            "escaped_symbols": int(sum((np.abs(s) > centers[i]).sum() for s, i in vector["passes"])),
        }
    (args.out / "vectors.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
