"""An AVIF base layer as the "latent codec" of a pixel-space pipeline (SODEC's idea, AV1 in the VAE codec's role).

The autoencoder is the identity (`PixelSpace`), so the codec sees the padded image. Each quality index names a
(resolution divisor, AVIF quality) pair: at low rates the base layer is the image reduced 2x or 4x (Lanczos),
which reaches rates below AVIF's floor at full size. The decoder decodes the AVIF, brings it back to full size
with Lanczos and hands the generator that image, plus a one-hot of the quality index (and a grey flag) as
`context`, so one generator restores every rate.

Section `base`: 1 byte format, 1 byte quality index, then the base layer. Format high nibble 2: the AV1 data
alone, the AVIF file's boxes rebuilt at decode (`avif_boxes`, 277 bytes fewer per image); high nibble 1: the
whole AVIF file (written where the rebuild would not give libavif's file back exactly). Low bit: the image is
grey.
AV1 decoding is exact integer arithmetic and Pillow's 8-bit Lanczos uses fixed-point coefficients, so the
generator's input is the same bytes in any process.
"""

from __future__ import annotations

import io
import random

import numpy as np
import torch
from PIL import Image, features

from ..errors import ConfigError, StreamError
from .avif_boxes import rebuild, strip
from .base import CodecOutput, LatentCodec

SECTION = "base"
FORMAT_V1 = 0x10  # the whole AVIF file
FORMAT_V2 = 0x20  # the AV1 data without the HEIF boxes
GREY_FLAG = 0x01
# (resolution divisor, AVIF quality) per quality index, rising rate. With the packaged model's encoder settings
# (speeds 6/5/4, sharpness 2) these give 0.0071, 0.015, 0.018, 0.031, 0.052, 0.084, 0.14, 0.17, 0.24, 0.37 and
# 0.55 bpp on Kodak, container included (results/avif-restore-1.2-kodak/). Up to about 0.2 bpp AVIF of the image
# at half size beats full-size AVIF on MS-SSIM, SSIMULACRA2 and deep distances (not on PSNR): measured on 12
# Kodak images with quality 0-80 at 1/2 and 0-62 at full size (results/avif-ladder-sweep/).
DEFAULT_LEVELS = (
    (4, 0), (4, 20), (2, 0), (2, 12), (2, 25), (2, 35), (2, 45), (1, 24), (1, 32), (1, 42), (1, 50),
)  # fmt: skip


def image_to_array(image: torch.Tensor) -> np.ndarray:
    """3 x H x W float in [-1, 1] (exact for images that came from uint8) -> H x W x 3 uint8."""
    # ((x.clamp(-1, 1) * 0.5 + 0.5) * 255 + 0.5).floor(): the same operations in the same order (so the same
    # bits), on one copy in place instead of six temporaries; this runs on every encode.
    pixels = image.detach().to("cpu", torch.float32, copy=True).clamp_(-1, 1).mul_(0.5).add_(0.5)
    pixels = pixels.mul_(255).add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())


def array_to_image(array: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float in [-1, 1]."""
    # in place after the conversion: the same bits as `x / 127.5 - 1`, one float copy instead of three
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float().div_(127.5).sub_(1)


class AvifBaseCodec(LatentCodec):
    """`levels`: (divisor, AVIF quality) per quality index; every divisor divides `pad_multiple` / 2.
    `speed`: libaom's encoder speed (0 slowest - 10), one for all sizes or three: at full, 1/2 and 1/4 size. An
    encoder setting only: a reduced base layer has a quarter or a sixteenth of the pixels, so it can afford a
    slower, better search at a similar encode time (speed 5 instead of 6: 5.6-7.1 % fewer bits at equal PSNR,
    MS-SSIM, SSIMULACRA2 and ENL2-dist on 4 full-size Kodak images, but 3-4x the encode time;
    results/avif-ladder-sweep/encoder-options.json).
    `sharpness`: libaom's loop-filter sharpness (0-7), an encoder setting only (decoders read the filter
    from the stream). 1-3 measured about 2 % fewer bits than 0 at equal PSNR, MS-SSIM and ENL2-dist on Kodak
    with libaom 3.14 (benchmarks/avif_encoder_options.py)."""

    pad_multiple = 8
    modes = ("normal",)

    def __init__(
        self,
        levels: tuple[tuple[int, int], ...] | list[list[int]] = DEFAULT_LEVELS,
        subsampling: str = "4:2:0",
        speed: int | tuple[int, int, int] | list[int] = 6,
        default_quality: int = 6,
        sharpness: int = 0,
    ) -> None:
        super().__init__()
        self.levels = tuple((int(d), int(q)) for d, q in levels)
        if not self.levels or len(self.levels) > 255:
            raise ConfigError("an AVIF base codec needs between 1 and 255 quality levels")
        if any(d not in (1, 2, 4) or not 0 <= q <= 100 for d, q in self.levels):
            raise ConfigError("AVIF base levels need a divisor of 1, 2 or 4 and a quality in 0..100")
        if not 0 <= default_quality < len(self.levels):
            raise ConfigError(f"default_quality {default_quality} is not one of the {len(self.levels)} levels")
        if not 0 <= int(sharpness) <= 7:
            raise ConfigError(f"AVIF sharpness must be 0-7, got {sharpness}")
        speeds = (speed,) * 3 if isinstance(speed, int) else tuple(speed)
        if len(speeds) != 3 or any(not isinstance(v, int) or not 0 <= v <= 10 for v in speeds):
            raise ConfigError(f"AVIF speed must be 0-10, or three such speeds (full, 1/2, 1/4 size), got {speed!r}")
        self.speed_by_divisor = dict(zip((1, 2, 4), speeds))
        self.subsampling, self.default_quality = subsampling, int(default_quality)
        self.sharpness = int(sharpness)
        # No weights: an empty, unsaved buffer tells which device the generator's input belongs on.
        self.register_buffer("device_marker", torch.zeros(0), persistent=False)

    @property
    def qualities(self) -> tuple[int, ...]:
        return tuple(range(len(self.levels)))

    @property
    def condition_channels(self) -> int:
        """Width of the context vector: one-hot quality index + the grey flag."""
        return len(self.levels) + 1

    def _quality(self, quality: int | None) -> int:
        if quality is None:
            return self.default_quality
        if not isinstance(quality, int) or not 0 <= quality < len(self.levels):
            raise ConfigError(f"quality must be an integer from 0 to {len(self.levels) - 1}, got {quality!r}")
        return quality

    def condition(self, quality: int, grey: bool, batch: int = 1) -> torch.Tensor:
        """The generator's context: B x 1 x (levels + 1)."""
        context = torch.zeros(batch, 1, self.condition_channels)
        context[:, 0, quality] = 1
        context[:, 0, -1] = float(grey)
        return context

    # -- the base layer on uint8 arrays (also what training pairs are made with) --

    def encode_base(self, array: np.ndarray, quality: int) -> bytes:
        """H x W x 3 uint8 (sides multiples of `pad_multiple`) -> the section payload."""
        divisor, avif_quality = self.levels[quality]
        grey = bool((array[..., 0] == array[..., 1]).all() and (array[..., 0] == array[..., 2]).all())
        picture = Image.fromarray(array)
        if divisor > 1:
            h, w = array.shape[:2]
            picture = picture.resize((w // divisor, h // divisor), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        options = {"advanced": [("sharpness", str(self.sharpness))]} if self.sharpness else {}
        picture.save(
            buffer,
            format="AVIF",
            quality=avif_quality,
            subsampling=self.subsampling,
            speed=self.speed_by_divisor[divisor],
            **options,
        )
        avif = buffer.getvalue()
        obus = strip(avif, *picture.size)
        kind, body = (FORMAT_V1, avif) if obus is None else (FORMAT_V2, obus)
        return bytes((kind | (GREY_FLAG if grey else 0), quality)) + body

    def parse_header(self, payload: bytes) -> tuple[int, bool]:
        """(quality index, grey) from a section payload, or a StreamError."""
        if len(payload) < 3 or payload[0] & 0xF0 not in (FORMAT_V1, FORMAT_V2) or payload[0] & 0x0E:
            raise StreamError("the AVIF base layer section is damaged (unknown format byte)")
        if payload[1] >= len(self.levels):
            raise StreamError(f"the stream names quality {payload[1]}, this model has {len(self.levels)} levels")
        return payload[1], bool(payload[0] & GREY_FLAG)

    def decode_base(self, payload: bytes, size: tuple[int, int]) -> tuple[np.ndarray, int, bool]:
        """A section payload -> (the full-size H x W x 3 uint8 base image, quality index, grey)."""
        if not features.check("avif"):
            raise ConfigError("this Pillow has no AVIF support (Pillow >= 11.2 built with libavif is needed)")
        quality, grey = self.parse_header(payload)
        divisor = self.levels[quality][0]
        h, w = size
        avif = payload[2:]
        if payload[0] & 0xF0 == FORMAT_V2:
            try:
                avif = rebuild(avif, w // divisor, h // divisor)
            except ValueError as e:
                raise StreamError(f"the AVIF base layer is damaged: {e}") from None
        try:
            with Image.open(io.BytesIO(avif), formats=["AVIF"]) as picture:
                picture = picture.convert("RGB")
        except Exception as e:  # Pillow and libavif raise several types for damaged data
            raise StreamError(f"the AVIF base layer cannot be decoded: {e}") from None
        if picture.size != (w // divisor, h // divisor):
            raise StreamError(f"the AVIF base layer is {picture.size[0]}x{picture.size[1]}, not 1/{divisor} of {w}x{h}")
        if divisor > 1:
            picture = picture.resize((w, h), Image.Resampling.LANCZOS)
        array = np.asarray(picture)
        if grey:  # keep a grey image exactly grey: AV1's chroma coding leaves +-1 tints
            array = np.repeat(np.round(array.mean(axis=2, keepdims=True)).astype(np.uint8), 3, axis=2)
        return array, quality, grey

    # -- the LatentCodec interface --

    def _output(self, payload: bytes, size: tuple[int, int]) -> CodecOutput:
        array, quality, grey = self.decode_base(payload, size)
        device = self.device_marker.device
        return CodecOutput(
            features=array_to_image(array)[None].to(device),
            context=self.condition(quality, grey).to(device),
            bits={SECTION: torch.tensor([8.0 * len(payload)], device=device)},
        )

    @torch.no_grad()
    def compress(
        self, image: torch.Tensor, latent: torch.Tensor, mode: str = "normal", quality: int | None = None
    ) -> dict[str, bytes]:
        if image.shape[0] != 1:
            raise ValueError("compress codes one image at a time")
        return {SECTION: self.encode_base(image_to_array(image[0]), self._quality(quality))}

    @torch.no_grad()
    def compress_and_reconstruct(
        self, image: torch.Tensor, latent: torch.Tensor, mode: str = "normal", quality: int | None = None
    ) -> tuple[dict[str, bytes], CodecOutput]:
        sections = self.compress(image, latent, mode=mode, quality=quality)
        return sections, self._output(sections[SECTION], tuple(image.shape[-2:]))

    @torch.no_grad()
    def decompress(self, sections: dict[str, bytes], padded_size: tuple[int, int], mode: str = "normal") -> CodecOutput:
        if mode not in self.modes:
            raise StreamError(f"the AVIF base codec has no mode {mode!r}")
        if set(sections) != {SECTION}:
            raise StreamError(f"expected one section {SECTION!r}, got {', '.join(sorted(sections)) or 'none'}")
        h, w = padded_size
        if h % self.pad_multiple or w % self.pad_multiple:
            raise StreamError(f"padded size {w}x{h} is not a multiple of {self.pad_multiple}")
        return self._output(sections[SECTION], (h, w))

    def forward(self, image: torch.Tensor, latent: torch.Tensor) -> CodecOutput:
        """Training and the pipeline contract: real AVIF coding of each image at a random quality index (the
        codec has no parameters; bits are the real payload sizes)."""
        outputs = [
            self._output(self.encode_base(image_to_array(x), q), tuple(x.shape[-2:]))
            for x, q in ((x, random.randrange(len(self.levels))) for x in image.detach())
        ]
        return CodecOutput(
            features=torch.cat([o.features for o in outputs]),
            context=torch.cat([o.context for o in outputs]),  # type: ignore[misc]
            bits={SECTION: torch.cat([o.bits[SECTION] for o in outputs])},
        )
