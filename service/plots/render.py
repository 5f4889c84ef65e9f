"""Drawing a job's learning curves, or one metric of several jobs, as PNG or SVG bytes.

With matplotlib set up by :mod:`.mpl` (imported on the first render, object-oriented API
only, so renders may run in parallel threads).

Every series is drawn with ``gid="series-<key>"`` (a metric name, or a job id in a
comparison), so an SVG's ``<g id="series-val_loss">`` finds it; legend and titles are
``<text>``. Text that users wrote (job names, labels) is drawn with ``parse_math`` off:
a job named ``$x$`` is a name, not TeX.
"""

from __future__ import annotations

import textwrap
from typing import Any

from service.plots import mpl
from service.plots.curves import ComparePlot, CurvesPlot, Series
from service.plots.mpl import LEGEND_WRAP, Format

__all__ = ["render_compare", "render_curves"]

CURVES_WIDTH_IN, PANEL_HEIGHT_IN, TITLE_HEIGHT_IN = 9.0, 2.5, 0.9
COMPARE_SIZE_IN = (10.0, 5.5)
#: Draw a marker at each epoch up to this many epochs (a lone finite value between gaps
#: is otherwise invisible); more would blot the line.
MARKERS_UP_TO = 60


def _line(ax: Any, series: Series, **style: Any) -> None:
    if len(series.epochs) <= MARKERS_UP_TO:
        style.setdefault("marker", "o")
        style.setdefault("markersize", 3)
    label = textwrap.fill(series.label, LEGEND_WRAP) if series.label else series.label
    ax.plot(
        series.epochs,
        series.values,
        label=label,
        gid=f"series-{series.key}",
        linewidth=1.5,
        **style,
    )


def _legend(ax: Any, points: int, **kw: Any) -> None:
    if not any(not str(h.get_label()).startswith("_") for h in ax.get_lines()):
        return
    # "best" tries every position against every point: fine for a few hundred.
    kw.setdefault("loc", "best" if points <= 1000 else "upper right")
    mpl.no_math(ax.legend(**kw).get_texts())


def _note(ax: Any, note: str | None) -> None:
    if note:
        ax.text(
            0.5,
            0.5,
            note,
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.35",
            gid="note",
        )


def _log(ax: Any) -> None:
    ax.set_yscale("log", nonpositive="mask")


def render_curves(plot: CurvesPlot, fmt: Format) -> bytes:
    """One job's panels, stacked on a shared epoch axis, as PNG or SVG bytes."""
    mpl.prepare()
    n = max(1, len(plot.panels))
    fig = mpl.figure(CURVES_WIDTH_IN, TITLE_HEIGHT_IN + PANEL_HEIGHT_IN * n)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(plot.title, parse_math=False)
    for i, (ax, panel) in enumerate(zip(axes, plot.panels, strict=False)):
        for series in panel.series:
            _line(ax, series)
        if plot.best_epoch is not None:
            ax.axvline(
                plot.best_epoch,
                color="0.4",
                linestyle="--",
                linewidth=1,
                gid=f"best-epoch-{i}",
                label=f"best epoch {plot.best_epoch}" if i == 0 else "_best",
            )
        ax.set_ylabel(panel.title)
        if panel.log:
            _log(ax)
        if not any(s.finite for s in panel.series):
            ax.tick_params(axis="y", labelleft=False)  # no values, no scale to read
        _legend(ax, sum(len(s.epochs) for s in panel.series))
    mpl.epoch_axis(axes[-1], plot.x_max)
    _note(axes[0], plot.note)
    return mpl.save(fig, fmt)


def render_compare(plot: ComparePlot, fmt: Format) -> bytes:
    """One metric of several jobs on one axis, the legend beside it, as PNG or SVG bytes."""
    mpl.prepare()
    fig = mpl.figure(*COMPARE_SIZE_IN)
    ax = fig.subplots()
    fig.suptitle(plot.title, parse_math=False)
    for series, color in zip(plot.series, mpl.colors(len(plot.series)), strict=True):
        _line(ax, series, color=color)
    ax.set_ylabel(plot.metric)
    if plot.log:
        _log(ax)
    x_max = max((e for s in plot.series for e in s.epochs), default=1)
    mpl.epoch_axis(ax, x_max)
    _legend(ax, 0, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    _note(ax, plot.note)
    return mpl.save(fig, fmt)
