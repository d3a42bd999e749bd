"""The checkerboard + uneven channel-slice context prior of ELIC, as OSDiff's `LFGCM` uses it (digest
osdiff-sodec.md §1.2 step 5, §1.4).

y's channels form slices (OSDiff: [8, 8, 8, 8, 16, 16, 32, 32, 96, 96]), coded one after the other. Each
slice is coded in two steps: first its anchors, the positions with row + column odd, then the
non-anchors (row + column even). Every step takes Gaussian means and scales (the first half of the
parameters are scales, the second means) from an entropy-parameters network fed with
  - the hyper-decoder's feature (`hyper_channels` at y's resolution),
  - a channel context of all slices decoded before (slices 1..: three 5x5 convolutions),
  - for the non-anchors, a 5x5 local context of this slice's decoded anchors (zero elsewhere).

Module names and shapes are OSDiff's (`local_context.{i}`, `channel_context.{i}.fushion.*` (sic) for
i >= 1, `entropy_parameters_anchor.{i}.fusion.*`, `entropy_parameters_nonanchor.{i}.fusion.*`), so its
checkpoints map with a prefix change. The streams are ours: one constriction stream of 2 chunks per slice
(anchors, then non-anchors, each in B, C, row, column order) through `GaussianConditional`.

One loop (`_run`) serves training, encoding, decoding and the z-only prediction, so the encoder derives
every step's y_hat exactly as the decoder will; it runs in float32 outside autocast, which keeps the
scale indices and means bit-identical on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..entropy.base import ContextPrior
from ..entropy.gaussian import GaussianConditional
from ..entropy.rate import add_uniform_noise, gaussian_bits, ste_round
from ..entropy.tables import NUM_SCALES, SCALE_MAX, SCALE_MIN
from ..errors import StreamError

OSDIFF_SLICES = (8, 8, 8, 8, 16, 16, 32, 32, 96, 96)
OSDIFF_CONTEXT_WIDTHS = (224, 128)


def anchor_mask(height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """H x W bool, True at the anchors: (even row, odd column) and (odd row, even column)."""
    rows = torch.arange(height, device=device).view(-1, 1)
    cols = torch.arange(width, device=device).view(1, -1)
    return (rows + cols) % 2 == 1


class ChannelContext(nn.Module):
    """OSDiff's `ChannelContextEX`: the slices decoded so far -> 2 x this slice's channels."""

    def __init__(self, in_channels: int, out_channels: int, widths: Sequence[int] = OSDIFF_CONTEXT_WIDTHS) -> None:
        super().__init__()
        first, second = widths
        self.fushion = nn.Sequential(  # OSDiff's spelling: it is in the checkpoint's keys
            nn.Conv2d(in_channels, first, 5, padding=2),
            nn.GELU(),
            nn.Conv2d(first, second, 5, padding=2),
            nn.GELU(),
            nn.Conv2d(second, out_channels, 5, padding=2),
        )

    def forward(self, decoded: torch.Tensor) -> torch.Tensor:
        return self.fushion(decoded)


class EntropyParameters(nn.Module):
    """OSDiff's `EntropyParametersEX`: three 1x1 convolutions, widths out*5/3 and out*4/3 between."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        wide, narrow = out_channels * 5 // 3, out_channels * 4 // 3
        self.fusion = nn.Sequential(
            nn.Conv2d(in_channels, wide, 1),
            nn.GELU(),
            nn.Conv2d(wide, narrow, 1),
            nn.GELU(),
            nn.Conv2d(narrow, out_channels, 1),
        )

    def forward(self, params: torch.Tensor) -> torch.Tensor:
        return self.fusion(params)


@dataclass
class PriorStep:
    slice_index: int
    channels: slice  # this slice's channels of y
    scales: torch.Tensor  # B x slice channels x H x W, float32, raw network output
    means: torch.Tensor  # B x slice channels x H x W, float32
    mask: torch.Tensor  # H x W bool: the positions this step codes


# Given a step, return the integer residuals round(y - means) as floats; only the masked positions are read.
StepQuantizer = Callable[[PriorStep], torch.Tensor]


class CheckerboardChannelPrior(ContextPrior):
    """Entropy model of y (sum(slices) channels) given the hyper-decoder's `feature` (B x hyper_channels
    x H x W, y's resolution). OSDiff: hyper_channels = 2 x 320, the default slices and context widths."""

    def __init__(
        self,
        hyper_channels: int,
        slices: Sequence[int] = OSDIFF_SLICES,
        context_widths: Sequence[int] = OSDIFF_CONTEXT_WIDTHS,
        scale_min: float = SCALE_MIN,
        scale_max: float = SCALE_MAX,
        num_scales: int = NUM_SCALES,
    ) -> None:
        super().__init__()
        if not slices or any(int(s) < 1 for s in slices) or len(context_widths) != 2:
            raise ValueError(f"bad checkerboard prior: slices {tuple(slices)}, context widths {tuple(context_widths)}")
        self.slices = tuple(int(s) for s in slices)
        self.channels = sum(self.slices)
        self.hyper_channels = int(hyper_channels)
        self.local_context = nn.ModuleList(nn.Conv2d(s, 2 * s, 5, padding=2) for s in self.slices)
        self.channel_context = nn.ModuleList(
            ChannelContext(sum(self.slices[:i]), 2 * s, context_widths) if i else None
            for i, s in enumerate(self.slices)
        )
        self.entropy_parameters_anchor = nn.ModuleList(
            EntropyParameters(hyper_channels + (2 * s if i else 0), 2 * s) for i, s in enumerate(self.slices)
        )
        self.entropy_parameters_nonanchor = nn.ModuleList(
            EntropyParameters(hyper_channels + (4 * s if i else 2 * s), 2 * s) for i, s in enumerate(self.slices)
        )
        self.gaussian = GaussianConditional(scale_min, scale_max, num_scales)

    def _run(self, feature: torch.Tensor, quantize: StepQuantizer) -> torch.Tensor:
        """The step loop shared by every use; returns y_hat (B x C x H x W, float32)."""
        with torch.autocast(device_type=feature.device.type, enabled=False):
            hyper = feature.float()
            anchors = anchor_mask(hyper.shape[-2], hyper.shape[-1], hyper.device)
            zero = torch.zeros((), device=hyper.device)
            decoded: list[torch.Tensor] = []
            start = 0
            for i, width in enumerate(self.slices):
                channels = slice(start, start + width)
                start += width
                context = [self.channel_context[i](torch.cat(decoded, dim=1))] if i else []
                scales, means = self.entropy_parameters_anchor[i](torch.cat([*context, hyper], dim=1)).chunk(2, dim=1)
                q = quantize(PriorStep(i, channels, scales, means, anchors))
                anchor_hat = torch.where(anchors, q + means, zero)
                local = self.local_context[i](anchor_hat)
                params = self.entropy_parameters_nonanchor[i](torch.cat([local, *context, hyper], dim=1))
                scales, means = params.chunk(2, dim=1)
                q = quantize(PriorStep(i, channels, scales, means, ~anchors))
                decoded.append(anchor_hat + torch.where(~anchors, q + means, zero))
            return torch.cat(decoded, dim=1)

    def _check(self, shape: Sequence[int], feature: torch.Tensor) -> None:
        b, _, h, w = feature.shape
        if feature.shape[1] != self.hyper_channels or tuple(shape) != (b, self.channels, h, w):
            raise ValueError(
                f"the checkerboard prior codes B x {self.channels} x H x W given a B x {self.hyper_channels} x H x W "
                f"feature, got y {tuple(shape)} and feature {tuple(feature.shape)}"
            )

    # --- the EntropyModel interface (parameter: `feature`) -------------------------------------------

    def estimate(self, x: torch.Tensor, **params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_hat with straight-through rounding, estimated bits per image). In training mode the rate uses
        the residual plus uniform noise, otherwise the rounded residual (what the real coder codes)."""
        feature = self.feature(params)
        self._check(x.shape, feature)
        residuals: list[torch.Tensor] = []  # per slice: anchors' residuals, then merged with the non-anchors'
        scales: list[torch.Tensor] = []

        def quantize(step: PriorStep) -> torch.Tensor:
            r = x[:, step.channels].float() - step.means
            if len(residuals) == step.slice_index:
                residuals.append(r)
                scales.append(step.scales)
            else:
                residuals[-1] = torch.where(step.mask, r, residuals[-1])
                scales[-1] = torch.where(step.mask, step.scales, scales[-1])
            return ste_round(r)

        y_hat = self._run(feature, quantize)
        with torch.autocast(device_type=x.device.type, enabled=False):
            residual = torch.cat(residuals, dim=1)
            coded = add_uniform_noise(residual) if self.training else torch.round(residual)
            bits = gaussian_bits(coded, torch.cat(scales, dim=1)).flatten(1).sum(1)
        return y_hat, bits

    @torch.no_grad()
    def compress(self, x: torch.Tensor, **params: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        """One stream of 2 chunks per slice, in decode order; returns it with the y_hat the decoder will get."""
        feature = self.feature(params)
        self._check(x.shape, feature)
        encoder = self.gaussian.encoder()

        def quantize(step: PriorStep) -> torch.Tensor:
            q = self.gaussian.symbols(x[:, step.channels], step.means)
            indexes = self.gaussian.scale_index(step.scales)
            encoder.add(q[:, :, step.mask].to(torch.int32), indexes[:, :, step.mask])
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

        def quantize(step: PriorStep) -> torch.Tensor:
            indexes = self.gaussian.scale_index(step.scales)[:, :, step.mask]
            q = torch.zeros_like(step.means)
            q[:, :, step.mask] = decoder.read(indexes).to(device=q.device, dtype=torch.float32)
            return q

        y_hat = self._run(feature, quantize)
        decoder.finish()
        return y_hat

    @torch.no_grad()
    def predict(self, feature: torch.Tensor) -> torch.Tensor:
        """No y transmitted: every step's y_hat is its predicted mean."""
        return self._run(feature, lambda step: torch.zeros_like(step.means))

    def extra_repr(self) -> str:
        return f"hyper_channels={self.hyper_channels}, slices={list(self.slices)}"
