"""A sweep's optimization history: the objective of each trial by trial number, with the
best so far."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.plots import mpl
from service.plots.mpl import Format
from service.plots.sweeps.common import (
    STATES,
    SweepInfo,
    TrialInfo,
    best_trial,
    better_word,
    counts_text,
    nothing_to_plot,
)

__all__ = ["HISTORY_SIZE_IN", "HistoryPlot", "history_plot", "render_history"]

HISTORY_SIZE_IN = (9.0, 5.0)


@dataclass(frozen=True)
class HistoryPlot:
    title: str
    metric: str
    direction: str
    ylabel: str
    #: (trial number, value or None) per state; a failed trial is drawn at the axis' foot.
    points: Mapping[str, tuple[tuple[int, float | None], ...]]
    #: The best complete value up to each trial (from the first complete one on).
    best_so_far: tuple[tuple[int, float], ...]
    x_max: int
    live: bool
    filename: str


def history_plot(info: SweepInfo, trials: Sequence[TrialInfo]) -> HistoryPlot:
    """The objective of each trial by trial number, with the best so far."""
    if not any(t.value is not None for t in trials if t.state != "fail"):
        raise nothing_to_plot(
            f"nothing to plot yet: no trial of sweep {info.id!r} has an objective value "
            f"({counts_text(trials) or 'no trials yet'})"
        )
    points: dict[str, list[tuple[int, float | None]]] = {s: [] for s in STATES}
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == "fail":
            points["fail"].append((t.number, None))
        elif t.value is not None:
            points[t.state].append((t.number, t.value))
    best: list[tuple[int, float]] = []
    current: float | None = None
    for t in sorted(trials, key=lambda t: t.number):
        done = t.state == "complete" and t.value is not None
        if done and (current is None or info.better(t.value, current)):  # type: ignore[arg-type]
            current = t.value
        if current is not None:
            best.append((t.number, current))
    top = best_trial(info, trials)
    head = f"{info.name} · optimization history · {counts_text(trials)}"
    if top is not None:
        head += f"\nbest #{top.number}: {info.metric} {top.value:.6g}"
    return HistoryPlot(
        title=head,
        metric=info.metric,
        direction=info.direction,
        ylabel=f"{info.metric} ({better_word(info)})",
        points={s: tuple(p) for s, p in points.items() if p},
        best_so_far=tuple(best),
        x_max=max((t.number for t in trials), default=0),
        live=info.live,
        filename=f"{info.filename}-history",
    )


_STATE_STYLE: dict[str, dict[str, Any]] = {
    "complete": {"marker": "o", "color": "C0", "markersize": 6},
    "pruned": {"marker": "x", "color": "C1", "markersize": 7, "markeredgewidth": 1.5},
    "fail": {"marker": "v", "color": "C3", "markersize": 7},
    "running": {"marker": "o", "color": "C2", "markersize": 6, "markerfacecolor": "none"},
}
_STATE_LABEL = {
    "complete": "complete",
    "pruned": "pruned (objective when stopped)",
    "fail": "failed (no value)",
    "running": "running (objective so far)",
}


def render_history(plot: HistoryPlot, fmt: Format) -> bytes:
    """Objective value per trial number, as PNG or SVG bytes."""
    mpl.prepare()
    from matplotlib.ticker import MaxNLocator

    fig = mpl.figure(*HISTORY_SIZE_IN)
    ax = fig.subplots()
    fig.suptitle(plot.title, parse_math=False)
    for state in STATES:
        pts = plot.points.get(state)
        if not pts:
            continue
        style = dict(_STATE_STYLE[state])
        label = f"{_STATE_LABEL[state]}: {len(pts)}"
        xs = [n for n, _ in pts]
        if state == "fail":
            # No value to place it by: a marker at the foot of the axis.
            ax.plot(
                xs,
                [0.02] * len(xs),
                linestyle="none",
                transform=ax.get_xaxis_transform(),
                clip_on=False,
                gid="series-fail",
                label=label,
                **style,
            )
        else:
            ys = [v for _, v in pts]
            ax.plot(xs, ys, linestyle="none", gid=f"series-{state}", label=label, **style)
    if plot.best_so_far:
        xs = [n for n, _ in plot.best_so_far]
        ys = [v for _, v in plot.best_so_far]
        ax.step(
            xs, ys, where="post", color="C0", linewidth=1.5, alpha=0.8, gid="best-so-far",
            label="best so far",
        )  # fmt: skip
    pad = 0.6
    ax.set_xlim(-pad, max(plot.x_max, 1) + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(plot.ylabel, parse_math=False)
    mpl.no_math(ax.legend(loc="best").get_texts())
    return mpl.save(fig, fmt)
