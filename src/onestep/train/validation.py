"""Periodic validation on a folder of whole images (Kodak by default): estimated bpp, PSNR, MS-SSIM and
the offline perceptual distance, using `onestep.eval`'s metric functions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..eval.fidelity import ms_ssim, psnr
from ..methods.pipeline import OneStepPipeline, pad_image, to_uint8
from .data import list_images, load_rgb, to_tensor


def _perceptual_network() -> nn.Module | None:
    try:
        from ..eval.perceptual import EfficientNetDistance
    except ImportError:  # the metric is optional for validation
        return None
    return EfficientNetDistance().eval().requires_grad_(False)


@torch.no_grad()
def validate(
    pipeline: OneStepPipeline,
    folder: str | Path,
    max_images: int = 24,
    max_side: int = 0,
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    perceptual: nn.Module | None = None,
) -> dict[str, float]:
    """Mean metrics over the first `max_images` images (downscaled to `max_side` when it is set);
    `autocast` makes the mixed-precision context for each forward.
    bpp is the codec's estimate on the padded image, divided by the original pixel count."""
    modes = [(m, m.training) for m in pipeline.modules()]
    pipeline.eval()
    device = next(pipeline.parameters()).device
    perceptual = perceptual if perceptual is not None else _perceptual_network()
    if perceptual is not None:
        perceptual.to(device)
    totals: dict[str, float] = {}
    paths = list_images(folder)[:max_images]
    for path in paths:
        image = load_rgb(path)
        if max_side and max(image.size) > max_side:
            image.thumbnail((max_side, max_side))
        x = to_tensor(image)[None].to(device)
        h, w = x.shape[-2:]
        with autocast() if autocast is not None else contextlib.nullcontext():
            out = pipeline(pad_image(x, pipeline.pad_multiple, pipeline.codec.pad_mode("normal")))
        reconstruction = out.reconstruction[..., :h, :w].float().clamp(-1, 1)
        metrics = {
            "bpp": float(out.codec.total_bits().sum()) / (h * w),
            "psnr": psnr(to_uint8(x[0]).cpu(), to_uint8(reconstruction[0]).cpu()),
            "ms_ssim": float(ms_ssim(to_uint8(x[0]).cpu(), to_uint8(reconstruction[0]).cpu())),
        }
        if perceptual is not None:
            metrics["perceptual"] = float(perceptual(reconstruction, x).mean())
        for key, value in metrics.items():
            totals[key] = totals.get(key, 0.0) + value
    for module, mode in modes:  # restore each module's own mode (frozen parts stay in eval)
        module.training = mode
    return {key: value / max(len(paths), 1) for key, value in totals.items()}
