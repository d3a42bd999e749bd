"""A complete one-step codec: autoencoder + latent codec (+ conditioner) + one-step generator.

    image -> autoencoder.encode -> codec.compress -> sections (bytes)
    sections -> codec.decompress -> [conditioner] -> generator (one call) -> autoencoder.decode -> image

Every method (`methods/<name>/`, see `registry.py`) is this class with its own parts and configs.

Memory: the autoencoder's encoder and the generator + decoder run tile by tile (`methods/tiling.py`) on images
larger than a tile, with a halo and blended overlaps; the codec always sees the whole latent. Encoder tiles
have a fixed size (`encode_tile`), so a stream depends on the image alone; decoder tiles may be set per call
(`decode_tile`, the memory knob): the pixels then move by at most a grey level or so near tile borders for
networks whose receptive field exceeds the halo, and not at all for local ones.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F

from ..autoencoders.base import Autoencoder
from ..bitstream import EncodedImage
from ..codecs.base import CodecOutput, LatentCodec
from ..errors import ConfigError, ImageError, ModelError, StreamError
from ..generators.base import Generator
from ..generators.conditioning import Conditioner
from ..modeling import ModelMixin
from ..partial_load import weights_device
from .tiling import run_tiled

__all__ = [
    "EncodedImage",
    "OneStepPipeline",
    "TrainingOutput",
    "deterministic",
    "pad_image",
    "rendering",
    "to_uint8",
]


@dataclass
class TrainingOutput:
    reconstruction: torch.Tensor | None  # B x 3 x H x W in [-1, 1], not clamped; None if not decoded
    latent: torch.Tensor  # the autoencoder's latent of the input (target for latent losses)
    latent_hat: torch.Tensor  # the generator's prediction
    codec: CodecOutput
    bpp: torch.Tensor  # estimated bits per pixel, shape B


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def pad_image(image: torch.Tensor, multiple: int, mode: str = "replicate") -> torch.Tensor:
    """Pad right and bottom to a multiple (`replicate` by default, the codec's `pad_mode` decides; `reflect`
    needs the pad to be smaller than the side, so it falls back to `replicate` for tiny images)."""
    h, w = image.shape[-2:]
    hp, wp = padded_size(h, w, multiple)
    if (hp, wp) == (h, w):
        return image
    if mode == "reflect" and (hp - h >= h or wp - w >= w):
        mode = "replicate"
    return F.pad(image, (0, wp - w, 0, hp - h), mode=mode)


# torch.set_num_threads sets the calling OS thread's OpenMP and MKL counts (and the count a thread that first
# uses torch later starts with); threads already running keep theirs (tests/test_coding_threads.py), and
# oneDNN's primitive cache is keyed by the calling thread's count. So each Python thread sets one thread for
# its own entropy path and restores its own setting afterwards: threads that do not code are never touched,
# and nothing needs to wait for another thread.
_local = threading.local()  # how deep this Python thread is in `deterministic` (nesting sets it once)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    depth = getattr(_local, "depth", 0)
    saved = torch.get_num_threads() if depth == 0 else None
    if saved is not None:
        torch.set_num_threads(1)
    _local.depth = depth + 1
    try:
        yield
    finally:
        _local.depth = depth
        if saved is not None:
            torch.set_num_threads(saved)


@contextlib.contextmanager
def _cuda_deterministic() -> Iterator[None]:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def deterministic(device: torch.device | str = "cpu") -> contextlib.AbstractContextManager[None]:
    """The numerics of the entropy path: whatever the symbols and their entropy parameters depend on (the
    encoder, hyper-decoder, prior, symbol coding), which must be bit-identical on both sides in any process.

    On CPU, oneDNN's and MKL's reductions change with the thread count, so this runs on one intra-op thread
    whatever the caller's setting; each Python thread sets that for itself and gets its own setting back when
    it leaves, and threads that do not code are not touched. On CUDA, deterministic kernels."""
    return _one_thread() if torch.device(device).type == "cpu" else _cuda_deterministic()


def rendering(device: torch.device | str = "cpu") -> contextlib.AbstractContextManager[None]:
    """The numerics of everything after the entropy path (codec synthesis, generator, autoencoder decoder):
    on CPU the caller's thread count (pixels bit-identical at a fixed count, within a grey level or so across
    counts); on CUDA deterministic kernels, so the same pixels on every run."""
    return contextlib.nullcontext() if torch.device(device).type == "cpu" else _cuda_deterministic()


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8 with round-half-up, as image writers do. The arithmetic runs in place on one
    copy (the same operations in the same order as out of place, so the same bits), which keeps the peak
    memory of a large image at two float copies."""
    x = image.clamp(-1, 1)
    return x.mul_(0.5).add_(0.5).mul_(255).add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)


class OneStepPipeline(ModelMixin):
    """Compose the parts. `name` goes into every stream, with the weights' fingerprint.

    `encode_tile` / `decode_tile` are tile sides in pixels (multiples of the padding multiple are used);
    `tile_halo` is the context computed around each tile and discarded, `tile_blend` the overlap mixed
    linearly, both in pixels."""

    def __init__(
        self,
        autoencoder: Autoencoder,
        codec: LatentCodec,
        generator: Generator,
        name: str = "onestep",
        max_pixels: int = 1 << 27,
        conditioner: Conditioner | None = None,
        encode_tile: int = 1024,
        decode_tile: int = 1024,
        tile_halo: int = 64,
        tile_blend: int = 32,
    ) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.codec = codec
        self.generator = generator
        self.conditioner = conditioner
        self.name = name
        self.max_pixels = max_pixels
        self.encode_tile, self.decode_tile = encode_tile, decode_tile
        self.tile_halo, self.tile_blend = tile_halo, tile_blend
        self.render_dtype = torch.float32  # set_render_dtype
        self.pad_multiple = max(codec.pad_multiple, autoencoder.downsampling)
        if self.pad_multiple % autoencoder.downsampling:
            raise ValueError("the codec's padding multiple must be a multiple of the autoencoder's downsampling")

    @property
    def device(self) -> torch.device:
        return weights_device(self)

    @property
    def modes(self) -> tuple[str, ...]:
        return self.codec.modes

    @property
    def qualities(self) -> tuple[int, ...]:
        """The codec's rate-control settings (empty: one rate per mode)."""
        return tuple(getattr(self.codec, "qualities", ()))

    def sender_only_prefixes(self) -> tuple[str, ...]:
        """The autoencoder's encoder and the codec's analysis: what `from_pretrained(decode_only=True)` skips."""
        parts = {"autoencoder": self.autoencoder, "codec": self.codec}
        return tuple(f"{name}.{prefix}" for name, part in parts.items() for prefix in part.sender_only_prefixes())

    def set_render_dtype(self, dtype: torch.dtype) -> OneStepPipeline:
        """bfloat16: the generator and the autoencoder's decoder compute in bfloat16 (channels-last; their first
        and last layers in float32), several times faster on CPUs with AVX512-BF16 / AMX. The codec (entropy
        path and synthesis) stays float32, so every stream decodes as before, to pixels near float32's but not
        within 2 grey levels everywhere: on OneDC's harness weights up to 16 levels off, and either stage alone in
        bfloat16 (even one level of the VAE decoder, or only the weights rounded to bfloat16) already moves some
        values by more than 2 (benchmarks/onedc-precision-stages.json), so there is no exact-enough mix to offer.
        One way: the float32 weights are dropped."""
        if dtype == self.render_dtype:
            return self
        if dtype != torch.bfloat16 or self.render_dtype != torch.float32:
            raise ConfigError(f"cannot render in {dtype} (only float32, or bfloat16 from float32)")
        parts = ((self.generator, "set_compute_dtype"), (self.autoencoder, "set_decoder_dtype"))
        for part, method in parts:
            if not callable(getattr(part, method, None)):
                raise ConfigError(f"model {self.name!r} cannot render in {dtype}: its {type(part).__name__} cannot")
        fingerprint = self.fingerprint()  # (from_pretrained gives it before the weights are read)
        for part, method in parts:
            getattr(part, method)(dtype)
        # the same streams still decode with it: keep the float32 weights' fingerprint
        object.__setattr__(self, "_fingerprint_cache", (self._weights_version(), fingerprint))
        self.render_dtype = dtype
        return self

    def _check_image(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 3 or image.shape[0] != 3:
            raise ImageError(f"expected a 3 x H x W image, got shape {tuple(image.shape)}")
        h, w = image.shape[-2:]
        if h * w > self.max_pixels:
            raise ImageError(f"image is {w}x{h}: more than this model's limit of {self.max_pixels} pixels")
        if image.dtype == torch.uint8:
            image = image.to(self.device, torch.float32).div_(127.5).sub_(1)
        return image[None].to(self.device)

    def check_mode(self, mode: str, error: type[Exception] = StreamError) -> None:
        """A mode this model has: ConfigError for a caller's argument, StreamError for a file's."""
        if mode not in self.modes:
            raise error(f"model {self.name!r} has no mode {mode!r} (it has: {', '.join(self.modes)})")

    def _check_quality(self, quality: int | None) -> None:
        if quality is not None and quality not in self.qualities:
            if not self.qualities:
                raise ImageError(f"model {self.name!r} has no rate control (--quality)")
            raise ImageError(f"quality {quality} is not one of model {self.name!r}'s: {list(self.qualities)}")

    def _tiling(self, tile: int) -> dict[str, int]:
        multiple = self.pad_multiple
        return dict(
            tile=max(multiple, tile // multiple * multiple),
            halo=-(-self.tile_halo // multiple) * multiple,
            blend=self.tile_blend // multiple * multiple,
            multiple=multiple,
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The autoencoder's latent of a padded image, tile by tile (fixed tiles: the stream must not depend on
        anything but the image)."""
        if not any(True for _ in self.autoencoder.parameters()):  # a fixed rearrangement: nothing to bound
            return self.autoencoder.encode(x)
        scale = Fraction(1, self.autoencoder.downsampling)
        return run_tiled(self.autoencoder.encode, x, scale, **self._tiling(self.encode_tile))

    def conditioning(self, out: CodecOutput) -> torch.Tensor | None:
        return out.context if self.conditioner is None else self.conditioner(out)

    def render(self, out: CodecOutput, padded: tuple[int, int], decode_tile: int | None = None) -> torch.Tensor:
        """Generator (one call per tile) + autoencoder decoder: codec output -> padded image in [-1, 1]."""
        context = self.conditioning(out)

        def run(features: torch.Tensor) -> torch.Tensor:
            return self.autoencoder.decode(self.generator(features, context))

        scale = Fraction(padded[0], out.features.shape[-2])  # pixels per feature unit
        tiling = {k: int(Fraction(v) / scale) for k, v in self._tiling(decode_tile or self.decode_tile).items()}
        tiling["multiple"] = max(1, tiling["multiple"])
        return run_tiled(run, out.features, scale, **tiling)

    @torch.no_grad()
    def compress(self, image: torch.Tensor, mode: str = "normal", quality: int | None = None) -> EncodedImage:
        """`image`: 3 x H x W, uint8 or float in [-1, 1]."""
        return self._compress(image, mode, quality, reconstruct=False)[0]

    @torch.no_grad()
    def compress_and_reconstruct(
        self, image: torch.Tensor, mode: str = "normal", quality: int | None = None, decode_tile: int | None = None
    ) -> tuple[EncodedImage, torch.Tensor]:
        """`compress`, plus the uint8 image `decompress` will return, computed on the encoder's side."""
        encoded, reconstruction = self._compress(image, mode, quality, reconstruct=True, decode_tile=decode_tile)
        assert reconstruction is not None
        return encoded, reconstruction

    def _compress(
        self, image: torch.Tensor, mode: str, quality: int | None, reconstruct: bool, decode_tile: int | None = None
    ) -> tuple[EncodedImage, torch.Tensor | None]:
        if self.skipped_weights:
            raise ModelError(f"model {self.name!r} was loaded for decoding only: it cannot compress")
        self.check_mode(mode, ConfigError)
        self._check_quality(quality)
        x = self._check_image(image)
        h, w = x.shape[-2:]
        x = pad_image(x, self.pad_multiple, self.codec.pad_mode(mode))
        options = {} if quality is None else {"quality": quality}
        with deterministic(self.device):
            latent = self.encode(x)
            if not reconstruct:
                return EncodedImage(self.codec.compress(x, latent, mode=mode, **options), h, w, mode), None
            sections, symbols = self.codec.write_sections(x, latent, mode=mode, **options)
        padded = tuple(x.shape[-2:])
        del x, latent
        with rendering(self.device):  # what decompress does after its entropy path, at the same thread count
            reconstruction = self.render(self.codec.finish(symbols), padded, decode_tile)
        return EncodedImage(sections, h, w, mode), to_uint8(reconstruction[0, :, :h, :w]).cpu()

    @torch.no_grad()
    def decompress(self, encoded: EncodedImage, decode_tile: int | None = None, preview: bool = False) -> torch.Tensor:
        """Returns the reconstruction as a 3 x H x W uint8 tensor. `preview`: the conditioner's quick image of
        the same stream (SODEC's fidelity decoder) instead of the one-step decode, for models that have one."""
        self.check_mode(encoded.mode)
        if preview and not callable(getattr(self.conditioner, "preview", None)):
            raise ModelError(f"model {self.name!r} has no preview decoder")
        h, w = encoded.height, encoded.width
        if h < 1 or w < 1 or h * w > self.max_pixels:
            raise StreamError(f"stream claims an image of {w}x{h}, which this model cannot produce")
        size = padded_size(h, w, self.pad_multiple)
        with deterministic(self.device):
            symbols = self.codec.read_sections(encoded.sections, size, mode=encoded.mode)
        with rendering(self.device):
            out = self.codec.finish(symbols)
            del symbols
            image = self.conditioner.preview(out) if preview else self.render(out, size, decode_tile)
            del out  # the codec's features: a full-size copy for pixel-space codecs
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
        latent_hat = self.generator(out.features, self.conditioning(out))
        reconstruction = self.autoencoder.decode(latent_hat) if decode else None
        pixels = latent.shape[-2] * latent.shape[-1] * self.autoencoder.downsampling**2
        bpp = out.total_bits() / pixels
        return TrainingOutput(reconstruction, latent, latent_hat, out, bpp)
