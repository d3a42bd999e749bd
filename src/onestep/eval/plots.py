"""Rate-distortion(-perception) curves, one PNG per metric (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

from .metrics import METRICS_BY_KEY  # noqa: E402
from .results import RatePoint  # noqa: E402


def plot_metric(
    points: dict[str, list[RatePoint]],
    labels: dict[str, str],
    key: str,
    path: Path,
    title: str,
    anchor: str | None = None,
) -> Path:
    """One curve per codec: mean bpp (log axis) against the metric's value per setting; the anchor's curve
    drawn thick and black and named so in the legend, downscaled baselines dashed."""
    info = METRICS_BY_KEY[key]
    figure, axes = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    for name, curve in points.items():
        pairs = sorted((p.bpp, p.values[key]) for p in curve if math.isfinite(p.values.get(key, math.nan)))
        if not pairs:
            continue
        style: dict[str, object] = {"marker": "o", "markersize": 3.5, "linewidth": 1.4, "label": labels[name]}
        if name == anchor:
            style.update(color="black", linewidth=2.6, label=f"{labels[name]} (anchor)", zorder=3)
        elif "-down" in name:
            style.update(linestyle="--")
        axes.plot(*zip(*pairs), **style)
    axes.set_xscale("log")
    # labelled ticks at 1-2-5 steps only: matplotlib's minor labels overlap on ranges under two decades
    low, high = axes.get_xlim()
    ticks = [m * 10.0**e for e in range(-4, 3) for m in (1, 2, 5) if low <= m * 10.0**e <= high]
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("bits per pixel")
    short, _, detail = info.label.partition(" (")
    unit = f" ({detail}" if detail and len(detail) <= 8 else ""  # a unit such as "dB)", not a description
    axes.set_ylabel(f"{short}{unit} {'↑ better' if info.higher_is_better else '↓ better'}")
    axes.set_title(f"{title}\n{info.label}" if detail else title, fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
