"""The 4-pass spatial/channel prior of DCVC-DC, as the released one-step diffusion codec uses it (digest §5.4).

The C channels of y form 4 groups of C/4. Each pass codes, in every group, one position of each 2x2
cell (a different one per group), so the 4 passes together code every (channel, position) once, and
passes 1-3 see everything decoded before them. Pass 0 takes its scales and means from the hyperprior
alone; pass k reads `context(adaptor_k(cat(y_hat so far, common)))`.

One loop (`_run`) serves training, encoding, decoding and the z-only mode, so the encoder derives each
pass's y_hat exactly as the decoder will; it runs in float32 outside autocast, which keeps the scale
indices and means bit-identical on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..entropy.base import ContextPrior
from ..entropy.gaussian import GaussianConditional
from ..entropy.rate import add_uniform_noise, gaussian_bits, ste_round
from ..errors import StreamError
from ..nn.depth_conv import DepthConvBlock

# The 2x2 cell position (0: top-left, 1: top-right, 2: bottom-left, 3: bottom-right) coded by each of
# the 4 channel groups, pass by pass.
PASS_POSITIONS = ((0, 1, 2, 3), (3, 2, 1, 0), (2, 3, 0, 1), (1, 0, 3, 2))
NUM_PASSES = len(PASS_POSITIONS)


@dataclass
class PriorPass:
    index: int
    scales: torch.Tensor  # B x C x H x W, float32, raw network output (no positivity constraint)
    means: torch.Tensor  # B x C x H x W, float32
    mask: torch.Tensor  # C x H x W bool: the elements this pass codes


# Given a pass, return the integer residuals round(y - means) as floats; only the masked elements are read.
PassQuantizer = Callable[[PriorPass], torch.Tensor]


def pass_masks(channels: int, height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """NUM_PASSES x C x H x W bool masks; they partition the tensor. Odd sides are fine."""
    if channels % 4:
        raise ValueError(f"the 4-pass prior needs a channel count divisible by 4, got {channels}")
    group = channels // 4
    masks = torch.zeros(NUM_PASSES, channels, height, width, dtype=torch.bool, device=device)
    for k, positions in enumerate(PASS_POSITIONS):
        for g, position in enumerate(positions):
            row, col = divmod(position, 2)
            masks[k, g * group : (g + 1) * group, row::2, col::2] = True
    return masks


def gather_pass(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """B x C x H x W -> B x C/4 x H x W: the one value per group-position this pass codes (exact: the
    other three terms of each sum are zeros)."""
    b, c, h, w = values.shape
    return torch.where(mask, values, torch.zeros((), dtype=values.dtype)).reshape(b, 4, c // 4, h, w).sum(1)


def scatter_pass(values: torch.Tensor) -> torch.Tensor:
    """B x C/4 x H x W -> B x C x H x W, each group getting the same tensor (masking selects the right one)."""
    return values.repeat(1, 4, 1, 1)


class FourPassPrior(ContextPrior):
    """Entropy parameters for y (`channels` C, divisible by 4) from a hyper-decoder feature map of the
    same resolution (`hyper_channels`). Holds no entropy-coder state in its state dict."""

    def __init__(self, channels: int, hyper_channels: int) -> None:
        super().__init__()
        if channels % 4:
            raise ValueError(f"the 4-pass prior needs a channel count divisible by 4, got {channels}")
        width = 2 * channels  # scales and means
        self.channels = channels
        self.fusion = nn.Sequential(DepthConvBlock(hyper_channels, width), DepthConvBlock(width))
        self.reduction = nn.Conv2d(width, channels, 1)
        self.adaptors = nn.ModuleList(DepthConvBlock(width) for _ in range(NUM_PASSES - 1))
        self.context = nn.Sequential(*(DepthConvBlock(width) for _ in range(3)))  # shared by passes 1-3
        self.gaussian = GaussianConditional()

    def _run(self, feature: torch.Tensor, quantize: PassQuantizer) -> torch.Tensor:
        """The pass loop shared by every use; returns y_hat (B x C x H x W, float32)."""
        with torch.autocast(device_type=feature.device.type, enabled=False):
            params = self.fusion(feature.float())
            b, _, h, w = params.shape
            masks = pass_masks(self.channels, h, w, params.device)
            common = self.reduction(params)
            y_hat = torch.zeros(b, self.channels, h, w, device=params.device)
            for k in range(NUM_PASSES):
                if k > 0:
                    params = self.context(self.adaptors[k - 1](torch.cat((y_hat, common), dim=1)))
                scales, means = params.chunk(2, dim=1)
                q = quantize(PriorPass(k, scales, means, masks[k]))
                y_hat = y_hat + torch.where(masks[k], q + means, torch.zeros((), device=params.device))
            return y_hat

    def _check(self, shape: Sequence[int], feature: torch.Tensor) -> None:
        b, _, h, w = feature.shape
        if tuple(shape) != (b, self.channels, h, w):
            raise ValueError(
                f"the 4-pass prior codes B x {self.channels} x H x W at the feature's size, "
                f"got y {tuple(shape)} and feature {tuple(feature.shape)}"
            )

    # --- the EntropyModel interface (parameter: `feature`) -------------------------------------------

    def estimate(self, x: torch.Tensor, **params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training/estimation: (y_hat with straight-through rounding, estimated bits per image (B,)).

        In training mode the rate uses the residual plus uniform noise, otherwise the rounded residual
        (what the real coder codes)."""
        feature = self.feature(params)
        self._check(x.shape, feature)
        residual = torch.zeros_like(x, dtype=torch.float32)
        scales = torch.zeros_like(residual)

        def quantize(p: PriorPass) -> torch.Tensor:
            nonlocal residual, scales
            r = x.float() - p.means
            residual = torch.where(p.mask, r, residual)
            scales = torch.where(p.mask, p.scales, scales)
            return ste_round(r)

        y_hat = self._run(feature, quantize)
        with torch.autocast(device_type=x.device.type, enabled=False):
            coded = add_uniform_noise(residual) if self.training else torch.round(residual)
            bits = gaussian_bits(coded, scales).flatten(1).sum(1)
        return y_hat, bits

    @torch.no_grad()
    def compress(self, x: torch.Tensor, **params: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        """One stream of 4 chunks (the passes, in decode order); returns it with the y_hat the decoder will get."""
        feature = self.feature(params)
        self._check(x.shape, feature)
        encoder = self.gaussian.encoder()

        def quantize(p: PriorPass) -> torch.Tensor:
            q = self.gaussian.symbols(x, p.means)
            indexes = self.gaussian.scale_index(p.scales)
            encoder.add(gather_pass(q, p.mask).to(torch.int32), gather_pass(indexes, p.mask))
            return q

        y_hat = self._run(feature, quantize)
        return encoder.finish(), y_hat

    @torch.no_grad()
    def decompress(self, data: bytes, shape: Sequence[int], **params: torch.Tensor) -> torch.Tensor:
        feature = self.feature(params)
        self._check(shape, feature)
        if not data:  # every symbol costs something, so a real stream is never empty
            raise StreamError("the y stream is empty")
        decoder = self.gaussian.decoder(data)

        def quantize(p: PriorPass) -> torch.Tensor:
            indexes = gather_pass(self.gaussian.scale_index(p.scales), p.mask)
            return scatter_pass(decoder.read(indexes).to(device=p.means.device, dtype=torch.float32))

        y_hat = self._run(feature, quantize)
        decoder.finish()
        return y_hat

    @torch.no_grad()
    def predict(self, feature: torch.Tensor) -> torch.Tensor:
        """No y transmitted (the z-only mode): each pass's y_hat is its predicted mean."""
        return self._run(feature, lambda p: torch.zeros_like(p.means))
