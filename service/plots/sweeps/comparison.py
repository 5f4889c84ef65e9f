"""A comparison's chart: per configuration, the mean curve of a metric over its seeds with
a band — the 95% confidence interval of the mean, or ± one standard deviation — computed
by :func:`service.stats.spread`, as the comparison's table is."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.plots import mpl
from service.plots.curves import to_float
from service.plots.mpl import LEGEND_WRAP, Format
from service.plots.sweeps.common import SweepInfo, nothing_to_plot
from service.stats import spread

__all__ = [
    "BANDS",
    "COMPARISON_SIZE_IN",
    "MAX_BANDS",
    "Band",
    "ComparisonPlot",
    "ConfigRuns",
    "comparison_plot",
    "render_comparison",
]

#: What the comparison's band shows: the 95% confidence interval of the mean (Student's
#: t over the seeds), or the mean ± one standard deviation.
BANDS: tuple[str, ...] = ("ci95", "std")
#: Most configurations on one comparison chart (a sweep's best ones beyond that).
MAX_BANDS = 20
COMPARISON_SIZE_IN = (10.0, 5.5)


@dataclass(frozen=True)
class ConfigRuns:
    """One configuration's runs (one per seed): each a list of (epoch, value)."""

    number: int
    label: str
    runs: Sequence[Sequence[tuple[int, Any]]]


@dataclass(frozen=True)
class Band:
    number: int
    label: str
    epochs: tuple[int, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]  # NaN where fewer than 2 seeds have a value
    high: tuple[float, ...]
    seeds: int  # runs with at least one value


@dataclass(frozen=True)
class ComparisonPlot:
    title: str
    metric: str
    band: str
    bands: tuple[Band, ...]
    live: bool
    filename: str


def _band(config: ConfigRuns, band: str) -> Band | None:
    per_epoch: dict[int, list[float]] = {}
    seeds = 0
    for run in config.runs:
        had = False
        for epoch, value in run:
            v = to_float(value)
            if not math.isnan(v):
                per_epoch.setdefault(int(epoch), []).append(v)
                had = True
        seeds += had
    if not per_epoch:
        return None
    epochs, mean, low, high = [], [], [], []
    for epoch in sorted(per_epoch):
        s = spread(per_epoch[epoch])
        assert s.mean is not None  # an epoch is here because it has a value
        if s.std is None or s.ci95 is None:  # one seed: no band
            lo = hi = math.nan
        elif band == "std":
            lo, hi = s.mean - s.std, s.mean + s.std
        else:
            lo, hi = s.ci95
        epochs.append(epoch)
        mean.append(s.mean)
        low.append(lo)
        high.append(hi)
    return Band(
        config.number, config.label, tuple(epochs), tuple(mean), tuple(low), tuple(high), seeds
    )


def comparison_plot(
    info: SweepInfo, configs: Sequence[ConfigRuns], metric: str, band: str, *, total: int
) -> ComparisonPlot:
    """Per configuration, the mean of ``metric`` over its seeds at each epoch, with a band
    (``ci95``: 95% confidence interval of the mean, Student's t; ``std``: ± one standard
    deviation). ``total``: configurations the sweep has (more than drawn when capped)."""
    if band not in BANDS:
        raise ValueError(f"unknown band {band!r}")
    bands = tuple(b for c in configs if (b := _band(c, band)) is not None)
    if not bands:
        raise nothing_to_plot(
            f"nothing to plot yet: no trial of sweep {info.id!r} has recorded {metric!r}"
        )
    what = "95% CI of the mean (t)" if band == "ci95" else "± 1 standard deviation"
    shown = f"best {len(configs)} of {total} configurations" if total > len(configs) else None
    head = f"{info.name} · {metric}: mean over seeds, band {what}"
    if shown:
        head += f" · {shown}"
    return ComparisonPlot(
        title=head,
        metric=metric,
        band=band,
        bands=bands,
        live=info.live,
        filename=f"{info.filename}-comparison",
    )


def render_comparison(plot: ComparisonPlot, fmt: Format) -> bytes:
    """Mean curves with bands, the legend beside the axes, as PNG or SVG bytes."""
    mpl.prepare()
    fig = mpl.figure(*COMPARISON_SIZE_IN)
    ax = fig.subplots()
    fig.suptitle(textwrap.fill(plot.title, 110), parse_math=False)
    for b, color in zip(plot.bands, mpl.colors(len(plot.bands)), strict=True):
        ax.fill_between(
            b.epochs, b.low, b.high, color=color, alpha=0.2, linewidth=0, gid=f"band-{b.number}"
        )
        label = textwrap.fill(f"{b.label} (n={b.seeds})", LEGEND_WRAP)
        marker = {"marker": "o", "markersize": 3} if len(b.epochs) <= 60 else {}
        ax.plot(
            b.epochs, b.mean, color=color, linewidth=1.6, label=label,
            gid=f"series-{b.number}", **marker,
        )  # fmt: skip
    mpl.epoch_axis(ax, max((e for b in plot.bands for e in b.epochs), default=1))
    ax.set_ylabel(plot.metric)
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    mpl.no_math(legend.get_texts())
    return mpl.save(fig, fmt)
