"""TAEF2: the tiny autoencoder (TAESD architecture) for the FLUX.2 latent space.

64-channel blocks, GroupNorm branches in the lowest-resolution blocks (`midblock_gn`), 32 latent channels
at 1/8 resolution, about 1.3M parameters per half. The TAESD networks work on images in [0, 1]; this
class converts from and to our [-1, 1].

Latent scaling: none (1.0). TAEF2 is trained to produce FLUX.2's *normalised* latent (after the VAE's
batch-norm statistics, un-patchified to 32 x H/8 x W/8), i.e. already the space a generator works in;
on Kodak its latents have mean ~0 and standard deviation ~0.85 (per channel 0.5-1.5), checked by the tests.

`decoder_head="subpixel"` replaces the decoder's last, full-resolution stage (about half of its cost) by a
half-resolution block + conv to 3 * 4 channels + PixelShuffle(2). Those layers are new (random) and must be
trained; all other layers still load from the TAEF2 files.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import ConfigError, ModelError
from ..modeling import load_state_dict_strict
from .base import Autoencoder
from .tiny_blocks import DECODER_HEADS, TinyDecoder, TinyEncoder
from .weight_files import read_torch_state_dict

TAEF2_FILES = ("taef2_encoder.pth", "taef2_decoder.pth")
TAEF2_DIR_VARIABLE = "ONESTEP_TAEF2_DIR"
# src/onestep/autoencoders/taef2.py -> the checkout's parent, where the shared data lives (../shared from the repo)
_CHECKOUT_SHARED_TAEF2 = Path(__file__).resolve().parents[4] / "shared" / "weights" / "taef2"


def _layer_index(key: str) -> int:
    head = key.split(".", 1)[0]
    return int(head) if head.isdigit() else -1


class TAEF2(Autoencoder):
    def __init__(
        self, latent_channels: int = 32, width: int = 64, midblock_gn: bool = True, decoder_head: str = "full"
    ) -> None:
        super().__init__()
        if decoder_head not in DECODER_HEADS:
            raise ConfigError(f"decoder_head must be one of {', '.join(DECODER_HEADS)}, got {decoder_head!r}")
        self.encoder = TinyEncoder(latent_channels, width, midblock_gn)
        self.decoder = TinyDecoder(latent_channels, width, midblock_gn, head=decoder_head)
        self.latent_channels = latent_channels
        self.downsampling = 8

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image * 0.5 + 0.5)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent) * 2 - 1

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if k.startswith("encoder.")}

    @classmethod
    def from_folder(
        cls, folder: str | os.PathLike[str] | None = None, decoder_head: str = "full", device: str = "cpu"
    ) -> TAEF2:
        """The released weights from `folder` (holding `TAEF2_FILES`); without one, from `$ONESTEP_TAEF2_DIR`,
        else from `shared/weights/taef2` beside the source checkout this package runs from."""
        if folder is None:
            folder = os.environ.get(TAEF2_DIR_VARIABLE) or _CHECKOUT_SHARED_TAEF2
        encoder, decoder = (Path(folder) / name for name in TAEF2_FILES)
        if not encoder.is_file() or not decoder.is_file():
            raise ModelError(
                f"{folder} does not hold the TAEF2 weights {' and '.join(TAEF2_FILES)} "
                f"(give a folder, e.g. taef2:FOLDER, or set {TAEF2_DIR_VARIABLE})"
            )
        return cls.from_taesd_files(encoder, decoder, decoder_head=decoder_head, device=device)

    @classmethod
    def from_taesd_files(
        cls,
        encoder_path: str | os.PathLike[str],
        decoder_path: str | os.PathLike[str],
        decoder_head: str = "full",
        device: str = "cpu",
    ) -> TAEF2:
        """Load the released `taef2_encoder.pth` / `taef2_decoder.pth` (fp16 state dicts, read as fp32)."""
        model = cls(decoder_head=decoder_head)
        load_state_dict_strict(model.encoder, read_torch_state_dict(encoder_path), source=str(encoder_path))
        decoder_state = read_torch_state_dict(decoder_path)
        if decoder_head != "full":
            # the file's last stage is replaced: drop its weights and keep the new head's initial ones
            start = model.decoder.head_start
            decoder_state = {k: v for k, v in decoder_state.items() if _layer_index(k) < start}
            decoder_state.update({k: v for k, v in model.decoder.state_dict().items() if _layer_index(k) >= start})
        load_state_dict_strict(model.decoder, decoder_state, source=str(decoder_path))
        return model.to(device).eval()
