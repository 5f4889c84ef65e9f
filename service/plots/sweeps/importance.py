"""A sweep's parameter importance: fANOVA importances (summing to 1) as horizontal bars,
the most important on top."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

from service.plots import mpl
from service.plots.mpl import Format
from service.plots.sweeps.common import SweepInfo, is_number, nothing_to_plot

__all__ = ["ImportancePlot", "importance_plot", "render_importance"]

IMPORTANCE_WIDTH_IN = 8.0


@dataclass(frozen=True)
class ImportancePlot:
    title: str
    #: (parameter, importance), most important first.
    items: tuple[tuple[str, float], ...]
    live: bool
    filename: str


def importance_plot(
    info: SweepInfo, importances: Mapping[str, float], trials_used: int
) -> ImportancePlot:
    """Parameters by importance (fANOVA, summing to 1), most important first."""
    items = sorted(
        ((name, float(v)) for name, v in importances.items() if is_number(v)),
        key=lambda kv: (-kv[1], kv[0]),
    )
    if not items:
        raise nothing_to_plot(f"nothing to plot: sweep {info.id!r} has no parameter to rank")
    return ImportancePlot(
        title=f"{info.name} · parameter importance for {info.metric} "
        f"(fANOVA, {trials_used} complete trials)",
        items=tuple(items),
        live=info.live,
        filename=f"{info.filename}-importance",
    )


def render_importance(plot: ImportancePlot, fmt: Format) -> bytes:
    """Horizontal bars, the most important parameter on top, as PNG or SVG bytes."""
    mpl.prepare()
    n = len(plot.items)
    fig = mpl.figure(IMPORTANCE_WIDTH_IN, 1.4 + 0.4 * n)
    ax = fig.subplots()
    fig.suptitle(textwrap.fill(plot.title, 90), parse_math=False)
    ys = list(range(n))[::-1]  # the first on top
    values = [v for _, v in plot.items]
    bars = ax.barh(ys, values, color="C0", height=0.6)
    for rank, bar in enumerate(bars):
        bar.set_gid(f"series-{rank}")
    top = max(values, default=0.0) or 1.0
    for y, v in zip(ys, values, strict=True):
        ax.text(v + 0.01 * top, y, f"{v:.3f}", va="center", ha="left", fontsize="small")
    ax.set_yticks(ys, labels=[name for name, _ in plot.items])
    mpl.no_math(ax.get_yticklabels())
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("importance")
    ax.grid(axis="y", visible=False)
    return mpl.save(fig, fmt)
