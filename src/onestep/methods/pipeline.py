"""A complete one-step codec: autoencoder + latent codec + one-step generator.

    image -> autoencoder.encode -> codec.compress -> sections (bytes)
    sections -> codec.decompress -> generator (one call) -> autoencoder.decode -> image

OneDC, OSDiff, SODEC and the default model are this class with different parts and configs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..autoencoders.base import Autoencoder
from ..codecs.base import CodecOutput, LatentCodec
from ..errors import ImageError, StreamError
from ..generators.base import Generator
from ..modeling import ModelMixin


@dataclass
class EncodedImage:
    """The content of a compressed file, before the container wraps it."""

    sections: dict[str, bytes]
    height: int
    width: int
    mode: str = "normal"


@dataclass
class TrainingOutput:
    reconstruction: torch.Tensor | None  # B x 3 x H x W in [-1, 1], not clamped; None if not decoded
    latent: torch.Tensor  # the autoencoder's latent of the input (target for latent losses)
    latent_hat: torch.Tensor  # the generator's prediction
    codec: CodecOutput
    bpp: torch.Tensor  # estimated bits per pixel, shape B


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def pad_image(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad right and bottom to a multiple (as the OneDC reference does)."""
    h, w = image.shape[-2:]
    hp, wp = padded_size(h, w, multiple)
    if (hp, wp) == (h, w):
        return image
    return F.pad(image, (0, wp - w, 0, hp - h), mode="replicate")


@contextlib.contextmanager
def deterministic(device: torch.device | str = "cpu") -> Iterator[None]:
    """The numerics every stream is made and read with.

    The entropy parameters must be bit-identical on both sides, and a stream must decode to the same pixels
    in any process. On CPU, oneDNN's and MKL's reductions change with the thread count, so coding runs on one
    intra-op thread whatever the caller's setting (the kernels stay fast; the result no longer depends on the
    machine's core count). On CUDA, deterministic kernels."""
    device = torch.device(device)
    if device.type == "cpu":
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8 with round-half-up, as image writers do."""
    return ((image.clamp(-1, 1) * 0.5 + 0.5) * 255 + 0.5).floor().clamp(0, 255).to(torch.uint8)


class OneStepPipeline(ModelMixin):
    """Compose the three parts. `name` goes into every stream, with the weights' fingerprint."""

    def __init__(
        self,
        autoencoder: Autoencoder,
        codec: LatentCodec,
        generator: Generator,
        name: str = "onestep",
        max_pixels: int = 4096 * 4096,
    ) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.codec = codec
        self.generator = generator
        self.name = name
        self.max_pixels = max_pixels
        self.pad_multiple = max(codec.pad_multiple, autoencoder.downsampling)
        if self.pad_multiple % autoencoder.downsampling:
            raise ValueError("the codec's padding multiple must be a multiple of the autoencoder's downsampling")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def modes(self) -> tuple[str, ...]:
        return self.codec.modes

    def _check_image(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 3 or image.shape[0] != 3:
            raise ImageError(f"expected a 3 x H x W image, got shape {tuple(image.shape)}")
        h, w = image.shape[-2:]
        if h * w > self.max_pixels:
            raise ImageError(f"image is {w}x{h}: more than this model's limit of {self.max_pixels} pixels")
        if image.dtype == torch.uint8:
            image = image.float() / 127.5 - 1
        return image[None]

    def _check_mode(self, mode: str) -> None:
        if mode not in self.modes:
            raise StreamError(f"model {self.name!r} has no mode {mode!r} (it has: {', '.join(self.modes)})")

    @torch.no_grad()
    def compress(self, image: torch.Tensor, mode: str = "normal") -> EncodedImage:
        """`image`: 3 x H x W, uint8 or float in [-1, 1]."""
        self._check_mode(mode)
        x = self._check_image(image)
        h, w = x.shape[-2:]
        x = pad_image(x.to(self.device), self.pad_multiple)
        with deterministic(self.device):
            latent = self.autoencoder.encode(x)
            sections = self.codec.compress(x, latent, mode=mode)
        return EncodedImage(sections=sections, height=h, width=w, mode=mode)

    @torch.no_grad()
    def compress_and_reconstruct(self, image: torch.Tensor, mode: str = "normal") -> tuple[EncodedImage, torch.Tensor]:
        """`compress`, plus the uint8 image `decompress` will return, computed on the encoder's side."""
        self._check_mode(mode)
        x = self._check_image(image)
        h, w = x.shape[-2:]
        x = pad_image(x.to(self.device), self.pad_multiple)
        with deterministic(self.device):
            sections, out = self.codec.compress_and_reconstruct(x, self.autoencoder.encode(x), mode=mode)
            reconstruction = self.autoencoder.decode(self.generator(out.features, out.context))
        return EncodedImage(sections, h, w, mode), to_uint8(reconstruction[0, :, :h, :w]).cpu()

    @torch.no_grad()
    def decompress(self, encoded: EncodedImage) -> torch.Tensor:
        """Returns the reconstruction as a 3 x H x W uint8 tensor."""
        self._check_mode(encoded.mode)
        h, w = encoded.height, encoded.width
        if h < 1 or w < 1 or h * w > self.max_pixels:
            raise StreamError(f"stream claims an image of {w}x{h}, which this model cannot produce")
        size = padded_size(h, w, self.pad_multiple)
        with deterministic(self.device):
            out = self.codec.decompress(encoded.sections, size, mode=encoded.mode)
            latent = self.generator(out.features, out.context)
            image = self.autoencoder.decode(latent)
        return to_uint8(image[0, :, :h, :w]).cpu()

    def forward(
        self, image: torch.Tensor | None, latent: torch.Tensor | None = None, decode: bool = True
    ) -> TrainingOutput:
        """Training. `image`: B x 3 x H x W in [-1, 1], sides multiples of `pad_multiple`.

        `latent` may be given (precomputed by the frozen autoencoder) to skip encoding; `image` may then be
        None for codecs that only read the latent. `decode=False` skips the autoencoder's decoder for
        latent-space losses (then `reconstruction` is None)."""
        if latent is None:
            if image is None:
                raise ValueError("forward needs an image or a latent")
            with torch.no_grad():
                latent = self.autoencoder.encode(image)
        out = self.codec(image, latent)
        latent_hat = self.generator(out.features, out.context)
        reconstruction = self.autoencoder.decode(latent_hat) if decode else None
        pixels = latent.shape[-2] * latent.shape[-1] * self.autoencoder.downsampling**2
        bpp = out.total_bits() / pixels
        return TrainingOutput(reconstruction, latent, latent_hat, out, bpp)
