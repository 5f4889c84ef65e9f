"""A sweep's intermediate values: every trial's objective so far at each step (epoch, or
percent of its run); pruned trials end in a ×."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.plots import mpl
from service.plots.mpl import LEGEND_WRAP, Format
from service.plots.sweeps.common import (
    STATES,
    SweepInfo,
    TrialInfo,
    best_trial,
    better_word,
    counts_text,
    nothing_to_plot,
)

__all__ = [
    "INTERMEDIATE_SIZE_IN",
    "Curve",
    "IntermediatePlot",
    "intermediate_plot",
    "render_intermediate",
]

INTERMEDIATE_SIZE_IN = (9.0, 5.0)


@dataclass(frozen=True)
class Curve:
    number: int
    label: str
    state: str
    steps: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class IntermediatePlot:
    title: str
    ylabel: str
    xlabel: str
    curves: tuple[Curve, ...]
    best: int | None  # the best complete trial's number
    live: bool
    filename: str


def intermediate_plot(info: SweepInfo, trials: Sequence[TrialInfo]) -> IntermediatePlot:
    """Every trial's objective so far at each step; pruned trials end in a ×."""
    curves = tuple(
        Curve(
            t.number,
            t.label,
            t.state,
            tuple(s for s, _ in t.intermediate),
            tuple(v for _, v in t.intermediate),
        )
        for t in sorted(trials, key=lambda t: t.number)
        if t.intermediate
    )
    if not curves:
        raise nothing_to_plot(
            f"nothing to plot yet: no trial of sweep {info.id!r} has finished an epoch "
            f"({counts_text(trials) or 'no trials yet'})"
        )
    top = best_trial(info, trials)
    xlabel = "progress (% of the trial's run)" if info.step_measure == "progress" else "epoch"
    return IntermediatePlot(
        title=f"{info.name} · intermediate values · {counts_text(trials)}",
        ylabel=f"{info.metric} so far ({better_word(info)})",
        xlabel=xlabel,
        curves=curves,
        best=top.number if top is not None else None,
        live=info.live,
        filename=f"{info.filename}-intermediate",
    )


_CURVE_STYLE: dict[str, dict[str, Any]] = {
    "complete": {"color": "C0", "linewidth": 1.2, "alpha": 0.75},
    "pruned": {"color": "C1", "linewidth": 1.0, "alpha": 0.75},
    "running": {"color": "C2", "linewidth": 1.2, "alpha": 0.9, "linestyle": "--"},
    "fail": {"color": "C3", "linewidth": 1.0, "alpha": 0.75, "linestyle": ":"},
}


def render_intermediate(plot: IntermediatePlot, fmt: Format) -> bytes:
    """Every trial's curve of its objective so far, as PNG or SVG bytes."""
    mpl.prepare()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig = mpl.figure(*INTERMEDIATE_SIZE_IN)
    ax = fig.subplots()
    fig.suptitle(plot.title, parse_math=False)
    counts: dict[str, int] = {}
    for curve in plot.curves:
        counts[curve.state] = counts.get(curve.state, 0) + 1
        style = dict(_CURVE_STYLE.get(curve.state, _CURVE_STYLE["complete"]))
        if curve.number == plot.best:
            style |= {"color": "C4", "linewidth": 2.4, "alpha": 1.0, "zorder": 3}
        marker = {"marker": "o", "markersize": 2.5} if len(curve.steps) <= 40 else {}
        ax.plot(curve.steps, curve.values, gid=f"series-{curve.number}", **style, **marker)
        if curve.state == "pruned":
            ax.plot(
                curve.steps[-1:], curve.values[-1:], linestyle="none", marker="x",
                markersize=8, markeredgewidth=2, color="C1", gid=f"pruned-{curve.number}",
            )  # fmt: skip
    handles = []
    for state in STATES:
        if not counts.get(state):
            continue
        style = _CURVE_STYLE[state]
        extra: dict[str, Any] = (
            {"marker": "x", "markersize": 8, "markeredgewidth": 2} if state == "pruned" else {}
        )
        label = {
            "complete": "complete",
            "pruned": "pruned (× where it stopped)",
            "running": "running",
            "fail": "failed",
        }[state]
        handles.append(
            Line2D(
                [],
                [],
                color=style["color"],
                linestyle=style.get("linestyle", "-"),
                label=f"{label}: {counts[state]}",
                **extra,
            )  # fmt: skip
        )
    if plot.best is not None:
        best = next((c for c in plot.curves if c.number == plot.best), None)
        if best is not None:
            name = textwrap.shorten(best.label, LEGEND_WRAP, placeholder="…")
            handles.append(Line2D([], [], color="C4", linewidth=2.4, label=f"best: {name}"))
    mpl.no_math(ax.legend(handles=handles, loc="best").get_texts())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel, parse_math=False)
    return mpl.save(fig, fmt)
