"""A sweep's plots: optimization history, parallel coordinates, intermediate values,
parameter importance and, for sweeps that repeat each configuration over seeds, mean
curves with bands.

Like :mod:`.curves` and :mod:`.render` together: the ``*_plot`` functions turn plain data
(:class:`SweepInfo`, :class:`TrialInfo`, never ORM rows) into what a plot shows, and
refuse with a 409 (``Conflict``) when there is nothing to draw yet; the ``render_*``
functions draw it with matplotlib's object-oriented API (imported on the first render,
see :mod:`.render`), as PNG or SVG bytes.

SVG ids, for tests and for anyone who scripts against the images:

- history: ``series-complete``, ``series-pruned``, ``series-fail``, ``series-running``
  (one group of markers per trial state) and ``best-so-far``;
- parallel coordinates: ``series-<trial number>`` (one line per trial), ``axis-<i>``;
- intermediate values: ``series-<trial number>`` (one curve per trial) and
  ``pruned-<trial number>`` (the × where a pruned trial stopped);
- importance: ``series-<rank>`` (one bar per parameter, 0 the most important);
- comparison: ``series-<trial number>`` (the mean curve) and ``band-<trial number>``.

Text that users wrote (sweep names, labels, categorical values) is drawn with
``parse_math`` off.
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from service.errors import Conflict
from service.plots.curves import to_float
from service.plots.labels import format_value
from service.plots.render import (
    DPI,
    LEGEND_WRAP,
    Format,
    _figure,
    _prepare,
    _save,
    _x_axis,
)

__all__ = [
    "BANDS",
    "KINDS",
    "MAX_BANDS",
    "Band",
    "ComparisonPlot",
    "ConfigRuns",
    "HistoryPlot",
    "ImportancePlot",
    "IntermediatePlot",
    "ParallelAxis",
    "ParallelPlot",
    "SweepInfo",
    "TrialInfo",
    "comparison_plot",
    "history_plot",
    "importance_plot",
    "intermediate_plot",
    "parallel_plot",
    "render_comparison",
    "render_history",
    "render_importance",
    "render_intermediate",
    "render_parallel",
    "t_quantile_975",
    "trial_label",
]

#: The plots a sweep has, in the order the API lists them.
KINDS: tuple[str, ...] = ("history", "parallel", "intermediate", "importance", "comparison")
#: What the comparison's band shows: the 95% confidence interval of the mean (Student's
#: t over the seeds), or the mean ± one standard deviation.
BANDS: tuple[str, ...] = ("ci95", "std")
#: Most configurations on one comparison chart (a sweep's best ones beyond that).
MAX_BANDS = 20
#: Categories labelled on a parallel-coordinates axis; more are labelled every k-th.
MAX_CATEGORY_LABELS = 12
#: Where a parallel-coordinates axis puts a trial that has no value there (a parameter of
#: another branch, or no objective yet), below the axis' range of 0..1.
MISSING_Y = -0.12

HISTORY_SIZE_IN = (9.0, 5.0)
INTERMEDIATE_SIZE_IN = (9.0, 5.0)
COMPARISON_SIZE_IN = (10.0, 5.5)
PARALLEL_HEIGHT_IN = 5.5
IMPORTANCE_WIDTH_IN = 8.0

State = Literal["running", "complete", "pruned", "fail"]
STATES: tuple[str, ...] = ("complete", "pruned", "fail", "running")


# -- the data ------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepInfo:
    """What every plot of a sweep needs to know about the sweep itself."""

    id: str
    name: str
    kind: str  # "sweep" | "comparison"
    status: str
    metric: str  # the objective's metric
    direction: Literal["min", "max"]
    #: The pruner's step: ``epoch``, or ``progress`` (percent of the trial's run).
    step_measure: str = "epoch"
    #: The stored spec's ``space`` (presets expanded), for axis scales; {} for comparisons.
    space: Mapping[str, Any] = field(default_factory=dict)
    repeats: int = 1
    live: bool = False  # the sweep may still change: the image must not be cached

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.id[:8]}"

    def better(self, a: float, b: float) -> bool:
        return a < b if self.direction == "min" else a > b


@dataclass(frozen=True)
class TrialInfo:
    """One trial as the plots see it."""

    number: int
    state: str  # running | complete | pruned | fail
    #: complete: the trial's score (the mean objective of its seeds); otherwise the
    #: objective so far (mean over its jobs that have one), or None.
    value: float | None
    params: Mapping[str, Any]
    label: str
    #: (step, objective so far) in step order; with several seeds, their mean per step.
    intermediate: tuple[tuple[int, float], ...] = ()


def trial_label(number: int, params: Mapping[str, Any], label: str | None = None) -> str:
    """``#3 sgd lr=0.01 momentum=0.9``: a configuration's label, or its values."""
    if label:
        return f"#{number} {label}"
    parts = []
    for path, value in params.items():
        leaf = path.rsplit(".", 1)[-1]
        if leaf.isdigit() and "." in path:  # optimizer.betas.0 -> betas.0
            leaf = ".".join(path.rsplit(".", 2)[-2:])
        text = format_value(value)
        parts.append(text if leaf in ("name", "kind") else f"{leaf}={text}")
    return " ".join([f"#{number}", *parts])


def trial_info(trial: Any, label: str | None = None) -> TrialInfo:
    """A :class:`TrialInfo` from a ``service.sweeps.study.TrialRow`` (a plain dataclass
    with ``number``, ``params``, ``jobs`` and ``outcome()``)."""
    state, value = trial.outcome()
    if value is None:
        so_far = [to_float(j.objective) for j in trial.jobs if j.objective is not None]
        so_far = [v for v in so_far if not math.isnan(v)]
        value = statistics.fmean(so_far) if so_far else None
    value = None if value is None or math.isnan(to_float(value)) else float(value)
    per_step: dict[int, list[float]] = {}
    for job in trial.jobs:
        for step, v in (job.intermediate or {}).items():
            x = to_float(v)
            if not math.isnan(x):
                try:
                    per_step.setdefault(int(step), []).append(x)
                except ValueError:
                    continue
    intermediate = tuple((s, statistics.fmean(vs)) for s, vs in sorted(per_step.items()))
    return TrialInfo(
        number=trial.number,
        state=state,
        value=value,
        params=dict(trial.params or {}),
        label=trial_label(trial.number, trial.params or {}, label),
        intermediate=intermediate,
    )


def _nothing(message: str) -> Conflict:
    return Conflict(message, code="nothing_to_plot")


def _better_word(info: SweepInfo) -> str:
    return "lower is better" if info.direction == "min" else "higher is better"


def _counts(trials: Sequence[TrialInfo]) -> str:
    parts = []
    for state in STATES:
        n = sum(t.state == state for t in trials)
        if n:
            parts.append(f"{n} {'failed' if state == 'fail' else state}")
    return ", ".join(parts)


def _best(info: SweepInfo, trials: Iterable[TrialInfo]) -> TrialInfo | None:
    best = None
    for t in trials:
        done = t.state == "complete" and t.value is not None
        if done and (best is None or info.better(t.value, best.value)):  # type: ignore[arg-type]
            best = t
    return best


# -- optimization history -------------------------------------------------------------


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
        raise _nothing(
            f"nothing to plot yet: no trial of sweep {info.id!r} has an objective value "
            f"({_counts(trials) or 'no trials yet'})"
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
    top = _best(info, trials)
    head = f"{info.name} · optimization history · {_counts(trials)}"
    if top is not None:
        head += f"\nbest #{top.number}: {info.metric} {top.value:.6g}"
    return HistoryPlot(
        title=head,
        metric=info.metric,
        direction=info.direction,
        ylabel=f"{info.metric} ({_better_word(info)})",
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


def _legend_texts(legend: Any) -> None:
    for text in legend.get_texts():
        text.set_parse_math(False)


def render_history(plot: HistoryPlot, fmt: Format) -> bytes:
    """Objective value per trial number, as PNG or SVG bytes."""
    _prepare()
    from matplotlib.ticker import MaxNLocator

    fig = _figure(*HISTORY_SIZE_IN)
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
    _legend_texts(ax.legend(loc="best"))
    return _save(fig, fmt)


# -- parallel coordinates -------------------------------------------------------------


@dataclass(frozen=True)
class ParallelAxis:
    name: str
    scale: Literal["linear", "log", "category"]
    low: float = 0.0
    high: float = 1.0
    categories: tuple[str, ...] = ()
    #: Each trial's position on the axis, 0..1 (``MISSING_Y`` when it has no value).
    positions: tuple[float, ...] = ()

    @property
    def has_missing(self) -> bool:
        return any(p == MISSING_Y for p in self.positions)


@dataclass(frozen=True)
class ParallelPlot:
    title: str
    metric: str
    direction: str
    axes: tuple[ParallelAxis, ...]  # the parameters, then the objective
    numbers: tuple[int, ...]  # the trials, one line each, in drawing order
    values: tuple[float | None, ...]  # their objective (None: not complete)
    low: float  # the objective's range, for the colour scale
    high: float
    live: bool
    filename: str


def _flatten_space(space: Mapping[str, Any], out: dict[str, list[dict[str, Any]]]) -> None:
    """Path → every distribution (stored-spec JSON) given for it, branches included."""
    for path, dist in space.items():
        if not isinstance(dist, Mapping):
            continue
        out.setdefault(path, []).append(dict(dist))
        for item in dist.get("choice") or []:
            if isinstance(item, Mapping) and isinstance(item.get("space"), Mapping):
                _flatten_space(item["space"], out)


def _choice_values(dist: Mapping[str, Any]) -> list[Any]:
    if "choice" in dist:
        return [v["value"] if isinstance(v, Mapping) else v for v in dist["choice"]]
    return list(dist.get("grid") or [])


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _category_key(v: Any) -> str:
    return format_value(v)


def _axis(name: str, dists: Sequence[Mapping[str, Any]], values: Sequence[Any]) -> ParallelAxis:
    """One parameter's axis: its scale from the space, positions of ``values`` (one per
    trial; ``_MISSING`` where the trial has none)."""
    present = [v for v in values if v is not _MISSING]
    ranged = [d for d in dists if any(k in d for k in ("uniform", "loguniform", "int"))]
    numeric = bool(present) and all(_is_number(v) for v in present)
    if ranged and (numeric or not present):
        log = any("loguniform" in d or ("int" in d and d.get("log")) for d in ranged)
        lows, highs = [], []
        for d in ranged:
            lo, hi = next(d[k] for k in ("uniform", "loguniform", "int") if k in d)
            lows.append(float(lo))
            highs.append(float(hi))
        nums = [float(v) for v in present if _is_number(v)]
        low, high = min([*lows, *nums]), max([*highs, *nums])
        if log and low <= 0:
            log = False
        return _numeric_axis(name, "log" if log else "linear", low, high, values)
    if not ranged and not dists and numeric and len({float(v) for v in present}) > 12:
        # A parameter with no distribution (a comparison's values) and many numbers.
        nums = [float(v) for v in present]
        return _numeric_axis(name, "linear", min(nums), max(nums), values)
    # Categories: the space's values in its order, then any other seen.
    cats: list[str] = []
    for d in dists:
        for v in _choice_values(d):
            if _category_key(v) not in cats:
                cats.append(_category_key(v))
    for v in present:
        if _category_key(v) not in cats:
            cats.append(_category_key(v))
    index = {c: i for i, c in enumerate(cats)}
    span = max(len(cats) - 1, 1)
    positions = tuple(
        MISSING_Y if v is _MISSING else (0.5 if len(cats) == 1 else index[_category_key(v)] / span)
        for v in values
    )
    return ParallelAxis(name, "category", categories=tuple(cats), positions=positions)


def _position(scale: str, low: float, high: float, v: float) -> float:
    if scale == "log":
        low, high, v = math.log10(low), math.log10(high), math.log10(v) if v > 0 else low
    if high <= low:
        return 0.5
    return min(1.0, max(0.0, (v - low) / (high - low)))


def _numeric_axis(
    name: str, scale: Literal["linear", "log"], low: float, high: float, values: Sequence[Any]
) -> ParallelAxis:
    positions = tuple(
        MISSING_Y if v is _MISSING or not _is_number(v) else _position(scale, low, high, float(v))
        for v in values
    )
    return ParallelAxis(name, scale, low, high, positions=positions)


class _Missing:
    def __repr__(self) -> str:
        return "n/a"


_MISSING: Any = _Missing()


def parallel_plot(info: SweepInfo, trials: Sequence[TrialInfo]) -> ParallelPlot:
    """One axis per parameter path (scaled as the space says), then the objective; one
    line per trial, coloured by its objective value (grey until it is complete)."""
    complete = [t for t in trials if t.state == "complete" and t.value is not None]
    if not complete:
        raise _nothing(
            f"nothing to plot yet: no trial of sweep {info.id!r} has completed "
            f"({_counts(trials) or 'no trials yet'})"
        )
    # Draw the incomplete first, then the complete from worst to best: the best on top.
    done = {t.number for t in complete}
    rest = [t for t in trials if t.number not in done]
    ordered = sorted(rest, key=lambda t: t.number) + sorted(
        complete,
        key=lambda t: t.value if info.direction == "max" else -t.value,  # type: ignore[operator]
    )
    flat: dict[str, list[dict[str, Any]]] = {}
    _flatten_space(info.space, flat)
    paths = [p for p in flat if any(p in t.params for t in trials)]
    paths += list(dict.fromkeys(p for t in trials for p in t.params if p not in flat))
    axes = [
        _axis(path, flat.get(path, []), [t.params.get(path, _MISSING) for t in ordered])
        for path in paths
    ]
    values = [t.value if t.number in done else None for t in ordered]
    finite = [v for v in values if v is not None]
    low, high = min(finite), max(finite)
    objective = _numeric_axis(
        f"{info.metric}\n({_better_word(info)})",
        "linear",
        low,
        high,
        [_MISSING if v is None else v for v in values],
    )
    head = f"{info.name} · parallel coordinates · {_counts(trials)}"
    return ParallelPlot(
        title=head,
        metric=info.metric,
        direction=info.direction,
        axes=(*axes, objective),
        numbers=tuple(t.number for t in ordered),
        values=tuple(values),
        low=low,
        high=high,
        live=info.live,
        filename=f"{info.filename}-parallel",
    )


def _ticks(axis: ParallelAxis) -> list[tuple[float, str]]:
    if axis.scale == "category":
        n = len(axis.categories)
        every = max(1, math.ceil(n / MAX_CATEGORY_LABELS))
        span = max(n - 1, 1)
        return [
            (0.5 if n == 1 else i / span, textwrap.shorten(c, 24, placeholder="…"))
            for i, c in enumerate(axis.categories)
            if i % every == 0 or i == n - 1
        ]
    if axis.high <= axis.low:
        return [(0.5, f"{axis.low:.4g}")]
    if axis.scale == "log":
        lo, hi = math.log10(axis.low), math.log10(axis.high)
        values = [10 ** (lo + (hi - lo) * f) for f in (0, 0.5, 1)]
    else:
        values = [axis.low + (axis.high - axis.low) * f for f in (0, 0.5, 1)]
    return [(f, f"{v:.3g}") for f, v in zip((0.0, 0.5, 1.0), values, strict=True)]


def render_parallel(plot: ParallelPlot, fmt: Format) -> bytes:
    """Parallel coordinates, as PNG or SVG bytes."""
    _prepare()
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    k = len(plot.axes)
    fig = _figure(min(22.0, max(8.0, 1.6 * k + 2.5)), PARALLEL_HEIGHT_IN)
    ax = fig.subplots()
    fig.suptitle(plot.title, parse_math=False)
    # The best value is the brightest colour whichever the direction.
    cmap = colormaps["viridis" if plot.direction == "max" else "viridis_r"]
    norm = Normalize(plot.low, plot.high if plot.high > plot.low else plot.low + 1)
    xs = list(range(k))
    for i, (number, value) in enumerate(zip(plot.numbers, plot.values, strict=True)):
        ys = [a.positions[i] for a in plot.axes]
        if value is None:
            style: dict[str, Any] = {"color": "0.7", "linewidth": 0.8, "linestyle": "--"}
        else:
            style = {"color": cmap(norm(value)), "linewidth": 1.4, "alpha": 0.9}
        ax.plot(xs, ys, gid=f"series-{number}", **style)
    for i, axis in enumerate(plot.axes):
        ax.axvline(i, color="0.25", linewidth=1, gid=f"axis-{i}")
        ticks = _ticks(axis)
        if axis.has_missing:
            ticks.append((MISSING_Y, "n/a"))
        for y, text in ticks:
            ax.text(
                i + 0.04, y, text, fontsize="x-small", va="center", ha="left",
                parse_math=False, clip_on=False,
            )  # fmt: skip
        if axis.scale == "log":
            ax.text(i, 1.045, "log", fontsize="x-small", ha="center", color="0.4", parse_math=False)
    ax.set_xlim(-0.3, k - 0.4)
    ax.set_ylim(MISSING_Y - 0.06, 1.08)
    ax.set_xticks(xs, labels=[a.name for a in plot.axes])
    for label in ax.get_xticklabels():
        label.set_parse_math(False)
        label.set_fontsize("small")
    ax.set_yticks([])
    ax.grid(False)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if any(v is None for v in plot.values):
        proxy = Line2D([], [], color="0.7", linestyle="--", label="not complete (no final value)")
        _legend_texts(ax.legend(handles=[proxy], loc="upper left", bbox_to_anchor=(0.0, -0.1)))
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01, fraction=0.03)
    bar.set_label(plot.metric, parse_math=False)
    return _save(fig, fmt)


# -- intermediate values --------------------------------------------------------------


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
        raise _nothing(
            f"nothing to plot yet: no trial of sweep {info.id!r} has finished an epoch "
            f"({_counts(trials) or 'no trials yet'})"
        )
    top = _best(info, trials)
    xlabel = "progress (% of the trial's run)" if info.step_measure == "progress" else "epoch"
    return IntermediatePlot(
        title=f"{info.name} · intermediate values · {_counts(trials)}",
        ylabel=f"{info.metric} so far ({_better_word(info)})",
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
    _prepare()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig = _figure(*INTERMEDIATE_SIZE_IN)
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
        extra = {"marker": "x", "markersize": 8, "markeredgewidth": 2} if state == "pruned" else {}
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
    _legend_texts(ax.legend(handles=handles, loc="best"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel, parse_math=False)
    return _save(fig, fmt)


# -- parameter importance -------------------------------------------------------------


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
        ((name, float(v)) for name, v in importances.items() if _is_number(v)),
        key=lambda kv: (-kv[1], kv[0]),
    )
    if not items:
        raise _nothing(f"nothing to plot: sweep {info.id!r} has no parameter to rank")
    return ImportancePlot(
        title=f"{info.name} · parameter importance for {info.metric} "
        f"(fANOVA, {trials_used} complete trials)",
        items=tuple(items),
        live=info.live,
        filename=f"{info.filename}-importance",
    )


def render_importance(plot: ImportancePlot, fmt: Format) -> bytes:
    """Horizontal bars, the most important parameter on top, as PNG or SVG bytes."""
    _prepare()
    n = len(plot.items)
    fig = _figure(IMPORTANCE_WIDTH_IN, 1.4 + 0.4 * n)
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
    for label in ax.get_yticklabels():
        label.set_parse_math(False)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("importance")
    ax.grid(axis="y", visible=False)
    return _save(fig, fmt)


# -- comparison: mean curves with bands -------------------------------------------------


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


#: Student's t, 97.5th percentile, for 1..30 degrees of freedom.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """The 97.5th percentile of Student's t with ``df`` degrees of freedom (the half-width
    of a 95% interval is this × the standard error)."""
    if df < 1:
        raise ValueError("t needs at least 1 degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    # Cornish–Fisher expansion around the normal quantile: within 1e-4 from df = 30 on.
    z = 1.959963984540054
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


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
        vs = per_epoch[epoch]
        m = statistics.fmean(vs)
        if len(vs) >= 2:
            sd = statistics.stdev(vs)
            half = sd if band == "std" else t_quantile_975(len(vs) - 1) * sd / math.sqrt(len(vs))
        else:
            half = math.nan
        epochs.append(epoch)
        mean.append(m)
        low.append(m - half)
        high.append(m + half)
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
        raise _nothing(
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
    _prepare()
    from matplotlib import colormaps

    fig = _figure(*COMPARISON_SIZE_IN)
    ax = fig.subplots()
    fig.suptitle(textwrap.fill(plot.title, 110), parse_math=False)
    cmap = colormaps["tab10" if len(plot.bands) <= 10 else "tab20"]
    for i, b in enumerate(plot.bands):
        color = cmap(i % cmap.N)
        ax.fill_between(
            b.epochs, b.low, b.high, color=color, alpha=0.2, linewidth=0, gid=f"band-{b.number}"
        )
        label = textwrap.fill(f"{b.label} (n={b.seeds})", LEGEND_WRAP)
        marker = {"marker": "o", "markersize": 3} if len(b.epochs) <= 60 else {}
        ax.plot(
            b.epochs, b.mean, color=color, linewidth=1.6, label=label,
            gid=f"series-{b.number}", **marker,
        )  # fmt: skip
    _x_axis(ax, max((e for b in plot.bands for e in b.epochs), default=1))
    ax.set_ylabel(plot.metric)
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    _legend_texts(legend)
    return _save(fig, fmt)


#: For tests: PNG sizes in pixels.
PIXELS = {
    "history": (round(HISTORY_SIZE_IN[0] * DPI), round(HISTORY_SIZE_IN[1] * DPI)),
    "intermediate": (round(INTERMEDIATE_SIZE_IN[0] * DPI), round(INTERMEDIATE_SIZE_IN[1] * DPI)),
    "comparison": (round(COMPARISON_SIZE_IN[0] * DPI), round(COMPARISON_SIZE_IN[1] * DPI)),
}
