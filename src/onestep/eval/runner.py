"""Running codecs over images: encode, decode, time, measure, with the disk cache and a progress bar.

The loop is codec -> setting -> image, so each model folder is loaded once. The reference side of the
deep metrics (features of the originals) is kept in memory across codecs up to a byte budget.

Timing (TIMING, recorded in summary.json): wall-clock seconds of `codec.encode` (pixels in memory -> the
complete file's bytes in memory) and `codec.decode` (bytes -> pixels), one image at a time; no file I/O
and no metric in either. A codec with `warm_up` (our models) is loaded and run once untimed on the first
image of each setting before anything is timed; the baselines' libraries need no warm-up.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from tqdm import tqdm

from ..errors import OneStepError
from .cache import CachedItem, ResultCache
from .dataset import EvalImage
from .metrics import METRICS_VERSION, MetricSuite


class Codec(Protocol):
    """What the runner needs of a codec (`BaselineCodec`, `ModelCodec`)."""

    name: str
    label: str
    description: str
    setting_name: str
    settings: tuple[Any, ...]

    def setting_label(self, setting: Any) -> str: ...
    def cache_key(self, setting: Any) -> str: ...
    def encode(self, setting: Any, image: torch.Tensor) -> bytes: ...
    def decode(self, setting: Any, data: bytes) -> torch.Tensor: ...


@dataclass
class Measurement:
    codec: str
    setting: Any
    image: str
    num_pixels: int
    num_bytes: int
    encode_s: float
    decode_s: float
    metrics: dict[str, float]

    @property
    def bpp(self) -> float:
        return 8.0 * self.num_bytes / self.num_pixels


@dataclass
class EvalRun:
    measurements: list[Measurement] = field(default_factory=list)
    # (codec, setting, image) -> extractor -> patch features
    features: dict[tuple[str, Any, str], dict[str, torch.Tensor]] = field(default_factory=dict)
    reference_features: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    computed: int = 0  # image results measured in this run (the others came from the cache)


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    return 0


class ReferenceStore:
    """`metric.prepare(original)` for every metric, least recently used evicted beyond `budget` bytes."""

    def __init__(self, suite: MetricSuite, budget: int = 2 << 30):
        self.suite, self.budget = suite, budget
        self._items: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()

    def get(self, image: EvalImage) -> dict[str, Any]:
        if image.digest in self._items:
            self._items.move_to_end(image.digest)
            return self._items[image.digest][1]
        prepared = {m.info.key: m.prepare(image.pixels) for m in self.suite.image_metrics}
        self._items[image.digest] = (_nbytes(prepared), prepared)
        while len(self._items) > 1 and sum(size for size, _ in self._items.values()) > self.budget:
            self._items.popitem(last=False)
        return prepared


def _timed(function: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


TIMING = {
    "encode_s": "wall-clock s per image of encoding pixels in memory into the complete file in memory: "
    "our models' autoencoder, codec networks and entropy coding, or the baseline library; no file I/O",
    "decode_s": "the same for decoding the file's bytes back to pixels (entropy decoding, generator, "
    "autoencoder decoder), no file I/O and no metric",
    "warm_up": "our models: loaded and run once untimed per rate point before timing; baselines: none",
    "order": "one image at a time, one process, the thread count and device given below",
}


def run_evaluation(
    codecs: list[Codec], images: list[EvalImage], suite: MetricSuite, cache: ResultCache, progress: bool = True
) -> EvalRun:
    run = EvalRun()
    for image in images:
        key = f"{image.digest}-v{METRICS_VERSION}"
        features = cache.reference_features(key)
        if set(features) != set(suite.extractors):
            features = suite.patch_features(image.pixels)
            cache.save_reference_features(key, features)
        run.reference_features[image.name] = features
    references = ReferenceStore(suite)
    wanted = [m.info.key for m in suite.image_metrics]
    total = sum(len(codec.settings) for codec in codecs) * len(images)
    with tqdm(total=total, desc="eval", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for codec in codecs:
            for setting in codec.settings:
                key = codec.cache_key(setting)
                warmed_up = not hasattr(codec, "warm_up")
                for image in images:
                    bar.set_postfix_str(f"{codec.name} {codec.setting_label(setting)} {image.name}", refresh=False)
                    item = cache.load(key, image.digest)
                    if _incomplete(item, wanted, suite):
                        if not warmed_up:
                            codec.warm_up(setting, image.pixels)  # type: ignore[attr-defined]
                            warmed_up = True
                        item = _measure(codec, setting, image, item, suite, references)
                        cache.save(key, image.digest, item)
                        run.computed += 1
                    assert item.data is not None
                    run.measurements.append(
                        Measurement(
                            codec.name,
                            setting,
                            image.name,
                            image.num_pixels,
                            len(item.data),
                            item.record["encode_s"],
                            item.record["decode_s"],
                            {k: item.record["metrics"][k] for k in wanted},
                        )
                    )
                    run.features[(codec.name, setting, image.name)] = item.features
                    bar.update()
    return run


def _incomplete(item: CachedItem, wanted: list[str], suite: MetricSuite) -> bool:
    metrics = item.record.get("metrics", {})
    return (
        item.data is None
        or item.record.get("metrics_version") != METRICS_VERSION
        or "encode_s" not in item.record
        or any(k not in metrics for k in wanted)
        or any(k not in item.features for k in suite.extractors)
    )


def _measure(
    codec: Codec, setting: Any, image: EvalImage, item: CachedItem, suite: MetricSuite, references: ReferenceStore
) -> CachedItem:
    record = dict(item.record)
    data = item.data
    if data is None or "encode_s" not in record:
        data, record["encode_s"] = _timed(codec.encode, setting, image.pixels)
    reconstruction, record["decode_s"] = _timed(codec.decode, setting, data)
    if reconstruction.shape != image.pixels.shape or reconstruction.dtype != torch.uint8:
        raise OneStepError(
            f"{codec.name} {codec.setting_label(setting)} decoded {image.name} to {reconstruction.dtype} "
            f"{tuple(reconstruction.shape)}, expected uint8 {tuple(image.pixels.shape)}"
        )
    prepared = references.get(image)
    current = record.get("metrics_version") == METRICS_VERSION
    metrics = dict(record.get("metrics", {})) if current else {}
    for metric in suite.image_metrics:
        if metric.info.key not in metrics:
            metrics[metric.info.key] = metric.measure(prepared[metric.info.key], reconstruction)
    record["metrics"] = metrics
    record["metrics_version"] = METRICS_VERSION
    features = dict(item.features) if current else {}
    if any(name not in features for name in suite.extractors):
        features.update(suite.patch_features(reconstruction))
    return CachedItem(data, record, features)
