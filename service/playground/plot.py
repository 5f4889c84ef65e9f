"""The playground's picture: the function's contours, every run's path, the start and
the known minima and saddle points, as PNG or SVG bytes.

Drawn with ``service/plots/mpl.py``'s helpers (matplotlib's object-oriented API only,
configured once per process, so renders may run in parallel threads). The contour levels
are logarithmic where the function spans decades over the window (Rosenbrock, Beale, an
ill-conditioned quadratic) and linear elsewhere (Rastrigin, the saddles). Below the
contour, f along each path against the step. In SVG each run's path is
``<g id="series-<run index>">`` and its values ``values-<run index>``; the start, minima
and saddle points are ``start``, ``minima``, ``local-minima`` and ``saddle-points``.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

from service.playground.functions import Surface
from service.playground.schemas import PlaygroundResult, RunResult, surface_of
from service.plots import mpl
from service.plots.mpl import LEGEND_WRAP, Format

__all__ = ["FIGURE_SIZE_IN", "GRID", "LOG_SPAN", "render_playground", "uses_log_levels"]

FIGURE_SIZE_IN = (9.0, 12.0)
#: The contour above, f against the step below.
HEIGHT_RATIOS = (3.0, 1.0)
#: Grid points per side on which the contours are computed.
GRID = 200
#: Log-scaled levels when the 95th percentile of the function's values over the window
#: is at least this many times the 5th (and no value is negative).
LOG_SPAN = 100.0
LEVELS = 25
#: The lowest log-scaled level, relative to the highest value in the window.
FLOOR = 1e-7
#: A grey background, so that the paths' colours (tab10) stand out: dark is low.
CMAP, ALPHA = "gray", 0.55
#: Draw a marker at each point of a path up to this many points; about DOTS on a longer one.
MARKERS_UP_TO = 60
DOTS = 60
#: Where the symmetric-log axis of f turns linear: |f| < this.
SYMLOG_LINEAR = 1e-2


def _grid(surface: Surface, result: PlaygroundResult) -> tuple[Any, Any, Any]:
    import numpy as np

    (x0, x1), (y0, y1) = result.window.x, result.window.y
    xs, ys = np.linspace(x0, x1, GRID), np.linspace(y0, y1, GRID)
    x, y = np.meshgrid(xs, ys)
    return x, y, surface.expression(x, y, np)


def uses_log_levels(z: Any) -> bool:
    """Whether the values ``z`` (an array) span decades: log-scaled contours then."""
    import numpy as np

    low, high = np.percentile(z, [5, 95])
    return bool(z.min() >= 0 and high > 0 and high >= LOG_SPAN * max(low, 1e-300))


def _contours(ax: Any, fig: Any, x: Any, y: Any, z: Any) -> None:
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import LogLocator, MaxNLocator

    top = float(z.max())
    if uses_log_levels(z):
        positive = z[z > 0]
        low = max(float(positive.min()) if positive.size else 0.0, top * FLOOR)
        levels: Any = np.geomspace(low, top, LEVELS)
        filled = ax.contourf(
            x, y, z, levels=levels, norm=LogNorm(low, top), cmap=CMAP, alpha=ALPHA, extend="min"
        )
        ticks: Any = LogLocator()
    else:
        levels = MaxNLocator(nbins=LEVELS).tick_values(float(z.min()), top)
        filled = ax.contourf(x, y, z, levels=levels, cmap=CMAP, alpha=ALPHA)
        ticks = None
    filled.set_gid("contours")
    lines = ax.contour(x, y, z, levels=levels, colors="k", linewidths=0.3, alpha=0.4)
    lines.set_gid("contour-lines")
    fig.colorbar(filled, ax=ax, shrink=0.7, label="f(x, y)", ticks=ticks)


def _outcome(run: RunResult, result: PlaygroundResult) -> str:
    if run.status == "diverged":
        return f"diverged at step {run.diverged_step}"
    if run.reached_minimum is not None:
        m = result.minima[run.reached_minimum]
        kind = "the global" if m.kind == "global" and len(result.minima) == 1 else f"a {m.kind}"
        return f"reached {kind} minimum ({m.x:.3g}, {m.y:.3g}) at step {run.reached_step}"
    return f"f = {run.final_value:.3g} after {run.steps_taken} steps"


def _known_points(ax: Any, result: PlaygroundResult) -> None:
    glob = [p for p in result.minima if p.kind == "global"]
    local = [p for p in result.minima if p.kind == "local"]
    if local:
        ax.plot(
            [p.x for p in local],
            [p.y for p in local],
            linestyle="none",
            marker="o",
            markersize=3,
            markerfacecolor="white",
            markeredgecolor="0.2",
            markeredgewidth=0.5,
            label="local minima",
            gid="local-minima",
            zorder=4,
        )
    if glob:
        ax.plot(
            [p.x for p in glob],
            [p.y for p in glob],
            linestyle="none",
            marker="*",
            markersize=15,
            markerfacecolor="white",
            markeredgecolor="k",
            label="global minimum" if len(glob) == 1 else "global minima",
            gid="minima",
            zorder=5,
        )
    if result.saddle_points:
        ax.plot(
            [p.x for p in result.saddle_points],
            [p.y for p in result.saddle_points],
            linestyle="none",
            marker="X",
            markersize=9,
            markerfacecolor="white",
            markeredgecolor="k",
            label="saddle point" if len(result.saddle_points) == 1 else "saddle points",
            gid="saddle-points",
            zorder=5,
        )
    sx, sy = result.start
    ax.plot(
        [sx],
        [sy],
        linestyle="none",
        marker="o",
        markersize=9,
        markerfacecolor="k",
        markeredgecolor="white",
        label=f"start ({sx:.4g}, {sy:.4g})",
        gid="start",
        zorder=6,
    )


def _path(ax: Any, i: int, run: RunResult, result: PlaygroundResult, color: Any) -> None:
    xs, ys = zip(*run.trajectory.points, strict=True)
    # A dot every k-th point (all of them on a short path): where dots crowd, the run
    # crawls, as gradient descent does beside a saddle point.
    every = max(1, len(xs) // DOTS) if len(xs) > MARKERS_UP_TO else 1
    label = textwrap.fill(f"{run.label}: {_outcome(run, result)}", LEGEND_WRAP + 12)
    z = 3 + (len(result.runs) - i) / 100  # the first run on top
    ax.plot(
        xs,
        ys,
        color=color,
        linewidth=1.5,
        marker="o",
        markersize=2.5,
        markevery=every,
        label=label,
        gid=f"series-{i}",
        zorder=z,
    )
    ax.plot(
        [xs[-1]],
        [ys[-1]],
        linestyle="none",
        marker="X" if run.status == "diverged" else "o",
        markersize=7,
        color=color,
        markeredgecolor="k",
        gid=f"final-{i}",
        zorder=6,
    )


def symlog_ticks(low: float, high: float) -> list[float]:
    """0 and ±powers of ten out to the values, at most about five on each side."""
    ticks = [0.0]
    for sign, reach in ((-1.0, -low), (1.0, high)):
        if reach <= SYMLOG_LINEAR:
            continue
        first, last = round(math.log10(SYMLOG_LINEAR)), math.ceil(math.log10(reach))
        stride = max(1, math.ceil((last - first) / 5))
        ticks += [sign * 10.0**k for k in range(last, first - 1, -stride)]
    return sorted(ticks)


def _values(ax: Any, result: PlaygroundResult, colors: list[Any]) -> None:
    """f along each path against the step: a log axis when every value is positive,
    else symmetric-log (the saddles fall through 0 towards −∞)."""
    values = [v for run in result.runs for v in run.trajectory.values]
    for i, (run, color) in enumerate(zip(result.runs, colors, strict=True)):
        z = 2 + (len(result.runs) - i) / 100
        ax.plot(run.trajectory.values, color=color, linewidth=1.2, gid=f"values-{i}", zorder=z)
    if min(values) > 0:
        ax.set_yscale("log")
    elif min(values) < 0:
        from matplotlib.ticker import NullLocator

        ax.set_yscale("symlog", linthresh=SYMLOG_LINEAR)
        ax.set_yticks(symlog_ticks(min(values), max(values)))
        ax.yaxis.set_minor_locator(NullLocator())
    ax.set_xlim(0, result.steps)
    ax.set_xlabel("step")
    ax.set_ylabel("f along the path")


def render_playground(result: PlaygroundResult, fmt: Format) -> bytes:
    """The contour of ``result``'s function over its window with every run's path, and
    below it f along each path, step by step."""
    mpl.prepare()
    surface = surface_of(result.function)
    fig = mpl.figure(*FIGURE_SIZE_IN)
    ax, below = fig.subplots(2, 1, height_ratios=HEIGHT_RATIOS)
    _contours(ax, fig, *_grid(surface, result))
    colors = mpl.colors(len(result.runs))
    for i, (run, color) in enumerate(zip(result.runs, colors, strict=True)):
        _path(ax, i, run, result, color)
    _known_points(ax, result)
    (x0, x1), (y0, y1) = result.window.x, result.window.y
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal" if max(x1 - x0, y1 - y0) <= 4 * min(x1 - x0, y1 - y0) else "auto")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(False)
    ax.set_title(
        f"{result.title}\n{result.formula}\n{result.steps} steps from "
        f"({result.start[0]:.4g}, {result.start[1]:.4g}); tolerance {result.tolerance:g}",
        parse_math=False,
    )
    _values(below, result, colors)
    legend = fig.legend(loc="outside lower center", ncols=2)
    mpl.no_math(legend.get_texts())
    return mpl.save(fig, fmt)
