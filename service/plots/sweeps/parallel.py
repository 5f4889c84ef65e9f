"""A sweep's parallel coordinates: one axis per parameter path (scaled as the space says),
then the objective; one line per trial, coloured by its objective value."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from service.plots import mpl
from service.plots.labels import format_value
from service.plots.mpl import Format
from service.plots.sweeps.common import (
    SweepInfo,
    TrialInfo,
    better_word,
    counts_text,
    is_number,
    nothing_to_plot,
)
from service.sweeps.states import TrialState

__all__ = ["MISSING_Y", "ParallelAxis", "ParallelPlot", "parallel_plot", "render_parallel"]

#: Categories labelled on a parallel-coordinates axis; more are labelled every k-th.
MAX_CATEGORY_LABELS = 12
#: Where a parallel-coordinates axis puts a trial that has no value there (a parameter of
#: another branch, or no objective yet), below the axis' range of 0..1.
MISSING_Y = -0.12
PARALLEL_HEIGHT_IN = 5.5


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


def _category_key(v: Any) -> str:
    return format_value(v)


def _axis(name: str, dists: Sequence[Mapping[str, Any]], values: Sequence[Any]) -> ParallelAxis:
    """One parameter's axis: its scale from the space, positions of ``values`` (one per
    trial; ``_MISSING`` where the trial has none)."""
    present = [v for v in values if v is not _MISSING]
    ranged = [d for d in dists if any(k in d for k in ("uniform", "loguniform", "int"))]
    numeric = bool(present) and all(is_number(v) for v in present)
    if ranged and (numeric or not present):
        log = any("loguniform" in d or ("int" in d and d.get("log")) for d in ranged)
        lows, highs = [], []
        for d in ranged:
            lo, hi = next(d[k] for k in ("uniform", "loguniform", "int") if k in d)
            lows.append(float(lo))
            highs.append(float(hi))
        nums = [float(v) for v in present if is_number(v)]
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
        MISSING_Y if v is _MISSING or not is_number(v) else _position(scale, low, high, float(v))
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
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        raise nothing_to_plot(
            f"nothing to plot yet: no trial of sweep {info.id!r} has completed "
            f"({counts_text(trials) or 'no trials yet'})"
        )
    # Draw the incomplete first, then the complete from worst to best: the best on top.
    done = {t.number for t in complete}
    rest = [t for t in trials if t.number not in done]
    sign = 1.0 if info.direction == "max" else -1.0
    ordered = sorted(rest, key=lambda t: t.number) + sorted(
        complete,
        key=lambda t: sign * (t.value or 0.0),  # every complete trial has a value
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
        f"{info.metric}\n({better_word(info)})",
        "linear",
        low,
        high,
        [_MISSING if v is None else v for v in values],
    )
    head = f"{info.name} · parallel coordinates · {counts_text(trials)}"
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
    mpl.prepare()
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    k = len(plot.axes)
    fig = mpl.figure(min(22.0, max(8.0, 1.6 * k + 2.5)), PARALLEL_HEIGHT_IN)
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
    mpl.no_math(ax.get_xticklabels())
    for label in ax.get_xticklabels():
        label.set_fontsize("small")
    ax.set_yticks([])
    ax.grid(False)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if any(v is None for v in plot.values):
        proxy = Line2D([], [], color="0.7", linestyle="--", label="not complete (no final value)")
        legend = ax.legend(handles=[proxy], loc="upper left", bbox_to_anchor=(0.0, -0.1))
        mpl.no_math(legend.get_texts())
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01, fraction=0.03)
    bar.set_label(plot.metric, parse_math=False)
    return mpl.save(fig, fmt)
