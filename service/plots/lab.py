"""The optimization lab's plots: an LR range test's curve with its suggestions marked, and
a loss landscape's 1-D interpolation, contour map and 3-D surface.

They draw plain dicts, the JSON the engine stores as the job's result
(``RangeTestRecord`` and ``LandscapeRecord`` of ``service/spec/results.py``, as JSON),
never ORM rows; a range test's curve comes beside it, from its metric rows. Like
:mod:`.render`, with :mod:`.mpl`'s setup: matplotlib's object-oriented API only (imported
on the first render), PNG or SVG bytes, text users wrote drawn with ``parse_math`` off.
This module imports neither torch nor numpy at import time (numpy comes with matplotlib,
at the first render).

SVG ids, for tests and for anyone who scripts against the images:

- range test: ``series-loss``, ``series-smoothed_loss``; per suggestion
  ``suggestion-<rule>`` (its vertical line) and ``suggestion-<rule>-point`` (the marker
  on the smoothed curve);
- interpolation: ``series-loss``, ``series-quality``, ``initial``, ``final``;
- contour: ``series-surface`` (filled contours), ``contour-lines``, ``centre`` (the final
  weights), ``trajectory`` and ``epoch-<n>`` (its labels) when there is one;
- surface: ``series-surface``, ``centre``, ``trajectory`` when there is one.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from service.plots import mpl
from service.plots.curves import to_float
from service.plots.mpl import DPI, LEGEND_WRAP, Format

__all__ = [
    "CURVE_COLUMNS",
    "PIXELS",
    "contour_levels",
    "render_interpolation",
    "render_landscape_contour",
    "render_landscape_surface",
    "render_range_test",
]

RANGE_SIZE_IN = (9.0, 5.5)
INTERPOLATION_SIZE_IN = (9.0, 5.0)
CONTOUR_SIZE_IN = (8.0, 6.5)
SURFACE_SIZE_IN = (8.0, 6.5)
#: For tests: PNG sizes in pixels.
PIXELS = {
    "range_test": (round(RANGE_SIZE_IN[0] * DPI), round(RANGE_SIZE_IN[1] * DPI)),
    "interpolation": (round(INTERPOLATION_SIZE_IN[0] * DPI), round(INTERPOLATION_SIZE_IN[1] * DPI)),
    "contour": (round(CONTOUR_SIZE_IN[0] * DPI), round(CONTOUR_SIZE_IN[1] * DPI)),
    "surface": (round(SURFACE_SIZE_IN[0] * DPI), round(SURFACE_SIZE_IN[1] * DPI)),
}
#: The columns of a range test's curve, as its metric rows name them.
CURVE_COLUMNS = ("lr", "loss", "smoothed_loss")
#: Log-scaled contour levels once the largest finite loss is this many times the smallest.
LOG_LEVELS_FROM = 100.0
CONTOUR_LEVELS = 24
#: Label at most this many epochs of a trajectory (every k-th, always the first and last).
EPOCH_LABELS = 12
RULE_COLORS = {"steepest": "C2", "min_div_10": "C3", "valley": "C4"}


# -- reading the JSON -------------------------------------------------------------------


def _floats(values: Any) -> list[float]:
    return [to_float(v) for v in (values or [])]


def _curve(curve: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Columns ``lr``, ``loss``, ``smoothed_loss`` from either columns (a ``RangeCurve``) or
    a list of rows (the job's metric rows, oldest first)."""
    if isinstance(curve, Mapping):
        return {name: _floats(curve.get(name)) for name in CURVE_COLUMNS}
    return {name: [to_float(row.get(name)) for row in curve] for name in CURVE_COLUMNS}


def _grid(rows: Any) -> list[list[float]]:
    return [_floats(row) for row in (rows or [])]


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _spans_decades(values: Sequence[float]) -> bool:
    finite = _finite(values)
    return bool(finite) and min(finite) > 0 and max(finite) >= LOG_LEVELS_FROM * min(finite)


def _title(fig: Any, title: str) -> None:
    fig.suptitle(textwrap.fill(title, 100), parse_math=False)


def _legend(ax: Any, **kw: Any) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        mpl.no_math(ax.legend(**kw).get_texts())


def _note(ax: Any, note: str) -> None:
    text = getattr(ax, "text2D", ax.text)  # 3-D axes place 2-D text with text2D
    text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", color="0.35")


# -- the range test -------------------------------------------------------------------


def render_range_test(
    result_json: Mapping[str, Any],
    curve: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    fmt: Format,
    *,
    title: str | None = None,
) -> bytes:
    """The loss and the smoothed loss against the rate (log axis), each suggestion a
    labelled vertical line with a marker on the smoothed curve; the rule ``"auto"``
    uses is drawn solid. PNG or SVG bytes.

    ``result_json``: a range-test job's result (a ``RangeTestRecord``'s JSON) or the
    record ``resolve_auto`` keeps of an ``"auto"`` rate. ``curve``: columns (``lr``,
    ``loss``, ``smoothed_loss``, as ``RangeCurve`` and that record give them) or the
    job's metric rows, oldest first; nulls are gaps."""
    mpl.prepare()
    import numpy as np

    columns = _curve(curve)
    lr, loss, smoothed = (columns[c] for c in CURVE_COLUMNS)
    fig = mpl.figure(*RANGE_SIZE_IN)
    ax = fig.subplots()
    # A range-test job's result, or the record of a job's "auto" rate (its test's
    # result under "range_test", the rule it used under "rule").
    inner = result_json.get("range_test") or {}
    stopped = (result_json.get("stopped") or inner.get("stopped") or {}).get("text")
    head = title or "LR range test"
    _title(fig, f"{head} · {stopped}" if stopped else head)
    points = [
        (r, a, s) for r, a, s in zip(lr, loss, smoothed, strict=False) if math.isfinite(r) and r > 0
    ]
    if not points:
        _note(ax, "nothing to plot: the range test has no steps yet")
        return mpl.save(fig, fmt)
    xs = [p[0] for p in points]
    ax.plot(
        xs,
        [p[1] for p in points],
        color="C0",
        alpha=0.35,
        linewidth=1,
        label="loss",
        gid="series-loss",
    )
    ax.plot(
        xs,
        [p[2] for p in points],
        color="C0",
        linewidth=2,
        label="smoothed loss",
        gid="series-smoothed_loss",
    )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")

    # Curves end in the blow-up that stopped the test: keep the descent readable.
    shown = [(x, s) for x, s in zip(xs, (p[2] for p in points), strict=True) if math.isfinite(s)]
    if shown:
        low = min(min(s for _, s in shown), min(_finite([p[1] for p in points]) or [math.inf]))
        i_min = min(range(len(shown)), key=lambda i: shown[i][1])
        high = max(s for _, s in shown[: i_min + 1])
        if high - low <= 0:
            high = max(s for _, s in shown)
        pad = (high - low) or abs(high) or 1.0
        ax.set_ylim(low - 0.05 * pad, high + 0.35 * pad)
        log_x = np.log10([x for x, _ in shown])
        ys = [s for _, s in shown]
    chosen = result_json.get("rule") or result_json.get("suggestion")
    for s in result_json.get("suggestions") or []:
        rule, value = str(s.get("rule")), to_float(s.get("lr"))
        if not (math.isfinite(value) and value > 0):
            continue
        used = rule == chosen
        color = RULE_COLORS.get(rule, "C5")
        label = f"{rule}: {value:.3g}" + (' (used by "auto")' if used else "")
        ax.axvline(
            value,
            color=color,
            linestyle="-" if used else "--",
            linewidth=1.8 if used else 1.2,
            label=label,
            gid=f"suggestion-{rule}",
        )
        if shown:
            y = float(np.interp(math.log10(value), log_x, ys))
            ax.plot(
                [value],
                [y],
                marker="o",
                markersize=7,
                color=color,
                linestyle="none",
                gid=f"suggestion-{rule}-point",
            )
    _legend(ax, loc="best")
    return mpl.save(fig, fmt)


# -- the landscape: 1-D ------------------------------------------------------------------


def _metric(result_json: Mapping[str, Any], key: str, default: str) -> str:
    return str((result_json.get("metrics") or {}).get(key) or default)


def render_interpolation(
    result_json: Mapping[str, Any], fmt: Format, *, title: str | None = None
) -> bytes:
    """The loss (left axis) and the quality metric (right axis) along
    θ(α) = (1−α)·θ_initial + α·θ_final, the initial and final weights marked."""
    mpl.prepare()
    data = result_json.get("interpolation") or {}
    alpha = _floats(data.get("alpha"))
    loss, quality = _floats(data.get("loss")), _floats(data.get("quality"))
    loss_name = _metric(result_json, "loss", "loss")
    quality_name = _metric(result_json, "quality", "quality")
    fig = mpl.figure(*INTERPOLATION_SIZE_IN)
    ax = fig.subplots()
    _title(fig, title or f"{loss_name} from the initial to the final weights")
    if not _finite(loss):
        _note(ax, "nothing to plot: no point of the interpolation was measured")
        return mpl.save(fig, fmt)
    ax.plot(alpha, loss, color="C0", linewidth=1.8, label=loss_name, gid="series-loss")
    if _spans_decades(loss):
        ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("α   (θ = (1−α)·θ_initial + α·θ_final)")
    ax.set_ylabel(loss_name, parse_math=False)
    for key, x, style in (("initial", 0.0, ":"), ("final", 1.0, "--")):
        ax.axvline(x, color="0.35", linestyle=style, linewidth=1, gid=key, label=f"{key} weights")
        end = data.get(key) or {}
        y = to_float(end.get("loss"))
        if math.isfinite(y):
            ax.plot([x], [y], marker="o", color="0.2", linestyle="none", gid=f"{key}-point")
    twin = ax.twinx()
    twin.grid(False)
    if _finite(quality):
        twin.plot(
            alpha, quality, color="C1", linewidth=1.4, label=quality_name, gid="series-quality"
        )
        twin.set_ylabel(quality_name, parse_math=False)
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    legend = ax.legend(
        handles + more,
        [textwrap.fill(t, LEGEND_WRAP) for t in labels + more_labels],
        loc="center right",
    )
    mpl.no_math(legend.get_texts())
    return mpl.save(fig, fmt)


# -- the landscape: 2-D ------------------------------------------------------------------


def _surface(result_json: Mapping[str, Any]) -> tuple[list[float], list[float], list[list[float]]]:
    surface = result_json.get("surface") or {}
    return _floats(surface.get("x")), _floats(surface.get("y")), _grid(surface.get("loss"))


def _rectangular(xs: list[float], ys: list[float], grid: list[list[float]]) -> bool:
    return len(grid) == len(ys) and all(len(row) == len(xs) for row in grid)


def _axis_labels(result_json: Mapping[str, Any]) -> tuple[str, str]:
    directions = result_json.get("directions") or {}
    if directions.get("kind") == "pca":
        shares = _floats(result_json.get("explained_variance")) + [math.nan, math.nan]
        return tuple(  # type: ignore[return-value]
            f"PC{k + 1}" + (f" ({v:.1%} of the trajectory's variance)" if math.isfinite(v) else "")
            for k, v in enumerate(shares[:2])
        )
    return "direction 1 (filter-normalised)", "direction 2 (filter-normalised)"


def _trajectory(
    result_json: Mapping[str, Any],
) -> tuple[list[int], list[float], list[float], list[float]] | None:
    path = result_json.get("trajectory")
    if not path:
        return None
    xs, ys, losses = _floats(path.get("x")), _floats(path.get("y")), _floats(path.get("loss"))
    epochs = [int(e) for e in path.get("epochs") or []]
    if not xs or len(xs) != len(ys):
        return None
    return epochs, xs, ys, losses


def _labelled(n: int) -> list[int]:
    """Which of ``n`` epochs get a label: all up to EPOCH_LABELS, else every k-th and the
    last."""
    if n <= EPOCH_LABELS:
        return list(range(n))
    k = math.ceil(n / EPOCH_LABELS)
    return sorted(set(range(0, n, k)) | {n - 1})


def _centre(result_json: Mapping[str, Any]) -> float:
    return to_float((result_json.get("centre") or {}).get("loss"))


def contour_levels(values: Sequence[float]) -> tuple[list[float], bool]:
    """``CONTOUR_LEVELS`` + 1 contour levels over the finite ``values``, geometric when
    they span ``LOG_LEVELS_FROM`` or more (then True), else evenly spaced."""
    finite = _finite(values)
    if not finite:
        raise ValueError("no finite value to draw contours of")
    low, high = min(finite), max(finite)
    n = CONTOUR_LEVELS
    if _spans_decades(finite):
        return [low * (high / low) ** (i / n) for i in range(n + 1)], True
    if high <= low:
        low, high = low - 0.5 * (abs(low) or 1.0), high + 0.5 * (abs(high) or 1.0)
    return [low + (high - low) * i / n for i in range(n + 1)], False


def render_landscape_contour(
    result_json: Mapping[str, Any], fmt: Format, *, title: str | None = None
) -> bytes:
    """Filled contours of the loss around the final weights (log-scaled levels when it
    spans two decades or more), the final weights marked, and the trajectory with its
    epochs when the result has one."""
    mpl.prepare()
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter, NullLocator

    xs, ys, grid = _surface(result_json)
    loss_name = _metric(result_json, "loss", "loss")
    fig = mpl.figure(*CONTOUR_SIZE_IN)
    ax = fig.subplots()
    _title(fig, title or f"{loss_name} around the final weights")
    values = _finite([v for row in grid for v in row])
    if len(values) < 2 or not _rectangular(xs, ys, grid):
        _note(ax, "nothing to plot: the grid has no measured loss yet")
        return mpl.save(fig, fmt)
    z = np.ma.masked_invalid(np.array(grid, dtype=float))
    levels, log = contour_levels(values)
    norm = LogNorm(vmin=levels[0], vmax=levels[-1]) if log else None
    filled = ax.contourf(xs, ys, z, levels=levels, norm=norm, cmap="viridis")
    filled.set_gid("series-surface")
    lines = ax.contour(
        xs, ys, z, levels=levels[::3], norm=norm, colors="k", linewidths=0.4, alpha=0.5
    )
    lines.set_gid("contour-lines")
    bar = fig.colorbar(filled, ax=ax, ticks=levels[::3])
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    bar.ax.yaxis.set_minor_locator(NullLocator())
    bar.set_label(loss_name)
    centre = _centre(result_json)
    label = "final weights" + (f" ({centre:.4g})" if math.isfinite(centre) else "")
    ax.plot(
        [0.0],
        [0.0],
        marker="*",
        markersize=14,
        color="red",
        markeredgecolor="white",
        linestyle="none",
        label=label,
        gid="centre",
    )
    path = _trajectory(result_json)
    if path is not None:
        epochs, px, py, _ = path
        ax.plot(
            px,
            py,
            color="white",
            marker="o",
            markersize=4,
            markeredgecolor="k",
            linewidth=1.5,
            label="trajectory (epochs)",
            gid="trajectory",
        )
        for i in _labelled(len(px)):
            if i < len(epochs):
                ax.annotate(
                    str(epochs[i]),
                    (px[i], py[i]),
                    xytext=(4, 4),
                    textcoords="offset points",
                    fontsize="x-small",
                    color="white",
                    gid=f"epoch-{epochs[i]}",
                )
    x_label, y_label = _axis_labels(result_json)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(False)
    _legend(ax, loc="upper right")
    return mpl.save(fig, fmt)


def render_landscape_surface(
    result_json: Mapping[str, Any], fmt: Format, *, title: str | None = None
) -> bytes:
    """The loss around the final weights as a 3-D surface (log10 of it when it spans two
    decades or more), the final weights and the trajectory marked."""
    mpl.prepare()
    import numpy as np
    from mpl_toolkits.mplot3d import Axes3D  # type: ignore[import-untyped]  # noqa: F401  registers the "3d" projection

    xs, ys, grid = _surface(result_json)
    loss_name = _metric(result_json, "loss", "loss")
    fig = mpl.figure(*SURFACE_SIZE_IN)
    # Drawn in the order given, not by depth: the path stays visible over the surface.
    ax = fig.add_subplot(projection="3d", computed_zorder=False)
    _title(fig, title or f"{loss_name} around the final weights")
    values = _finite([v for row in grid for v in row])
    if len(values) < 2 or not _rectangular(xs, ys, grid):
        _note(ax, "nothing to plot: the grid has no measured loss yet")
        return mpl.save(fig, fmt)
    log = _spans_decades(values)

    def height(v: Any) -> Any:
        return np.log10(v) if log else v

    # A surface cannot have holes: unmeasured or non-finite points sit at the highest loss.
    z = np.array(grid, dtype=float)
    z = np.where(np.isfinite(z), z, max(values))
    gx, gy = np.meshgrid(xs, ys)
    surface = ax.plot_surface(
        gx, gy, height(z), cmap="viridis", linewidth=0, antialiased=True, alpha=0.9
    )
    surface.set_gid("series-surface")
    centre = _centre(result_json)
    if math.isfinite(centre) and (centre > 0 or not log):
        ax.scatter(
            [0.0],
            [0.0],
            [height(centre)],
            color="red",
            marker="*",
            s=120,
            label=f"final weights ({centre:.4g})",
            gid="centre",
            zorder=3,
        )
    path = _trajectory(result_json)
    if path is not None:
        _, px, py, losses = path
        pz = [height(v) if math.isfinite(v) and (v > 0 or not log) else math.nan for v in losses]
        if len(pz) == len(px):
            ax.plot(
                px,
                py,
                pz,
                color="C3",
                marker="o",
                markersize=3,
                markeredgecolor="k",
                label="trajectory",
                gid="trajectory",
                zorder=3,
            )
    x_label, y_label = _axis_labels(result_json)
    ax.set_xlabel(textwrap.fill(x_label, 30), fontsize="small")
    ax.set_ylabel(textwrap.fill(y_label, 30), fontsize="small")
    ax.set_zlabel(f"log10 {loss_name}" if log else loss_name, fontsize="small")
    _legend(ax, loc="upper left")
    return mpl.save(fig, fmt)
