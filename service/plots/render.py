"""Drawing plots as PNG or SVG bytes with matplotlib.

matplotlib is imported on the first render, never when the API starts. Only its
object-oriented API is used (a ``Figure`` of our own and the Agg canvas), never pyplot,
whose current-figure state is global: each render owns its figure, so renders may run in
parallel threads. The settings they need (text kept as text in SVG, stable SVG ids) are
set once, process-wide, at the first render: ``rc_context`` would set and then restore
the global ``rcParams`` around each render, and two renders in parallel would restore
each other's settings while drawing.

Every series is drawn with ``gid="series-<key>"`` (a metric name, or a job id in a
comparison), so an SVG's ``<g id="series-val_loss">`` finds it; legend and titles are
``<text>``. Text that users wrote (job names, labels) is drawn with ``parse_math`` off:
a job named ``$x$`` is a name, not TeX.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Any, Literal

from service.plots.curves import ComparePlot, CurvesPlot, Series

__all__ = ["DPI", "FORMATS", "MEDIA_TYPES", "Format", "render_compare", "render_curves"]

Format = Literal["png", "svg"]
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml"}
FORMATS: tuple[str, ...] = tuple(MEDIA_TYPES)
#: PNG resolution: figure sizes below are in inches, so pixels = inches × DPI.
DPI = 100
CURVES_WIDTH_IN, PANEL_HEIGHT_IN, TITLE_HEIGHT_IN = 9.0, 2.5, 0.9
COMPARE_SIZE_IN = (10.0, 5.5)
#: Draw a marker at each epoch up to this many epochs (a lone finite value between gaps
#: is otherwise invisible); more would blot the line.
MARKERS_UP_TO = 60
#: Legend entries wrap at this many characters, so a long label cannot squeeze the axes.
LEGEND_WRAP = 48

_RC: dict[str, Any] = {
    "svg.fonttype": "none",  # text as <text>, not glyph paths
    "svg.hashsalt": "descent-plots",  # the same ids in every render of the same plot
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": "small",
    "figure.titlesize": "medium",
}
_lock = threading.Lock()
_ready = False


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _config_dirs() -> list[Path]:
    """Where matplotlib keeps its configuration and font cache unless told otherwise."""
    home = Path.home()
    if sys.platform.startswith(("linux", "freebsd")):
        config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        cache = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
        return [config / "matplotlib", cache / "matplotlib"]
    return [home / ".matplotlib"]


def _prepare() -> None:
    """Import and configure matplotlib once per process (thread-safe)."""
    global _ready
    with _lock:
        if _ready:
            return
        if not os.environ.get("MPLCONFIGDIR"):
            try:
                usable = all(_writable(d) for d in _config_dirs())
            except RuntimeError:  # no home directory (a container's arbitrary user)
                usable = False
            if not usable:
                # matplotlib would make a temporary directory itself, with a warning.
                os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="descent-matplotlib-")
        import matplotlib

        matplotlib.use("agg")
        matplotlib.rcParams.update(_RC)
        _ready = True


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, fmt: Format) -> bytes:
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"unknown plot format {fmt!r}; one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    # No date in the SVG: the same plot renders to the same bytes.
    metadata = {"Date": None} if fmt == "svg" else None
    fig.savefig(buf, format=fmt, dpi=DPI, metadata=metadata)
    return buf.getvalue()


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


def _x_axis(ax: Any, x_max: int) -> None:
    from matplotlib.ticker import MaxNLocator

    pad = max(0.5, 0.01 * (x_max - 1)) if x_max > 1 else 0.5
    ax.set_xlim(1 - pad, x_max + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def _legend(ax: Any, points: int, **kw: Any) -> None:
    if not any(not str(h.get_label()).startswith("_") for h in ax.get_lines()):
        return
    # "best" tries every position against every point: fine for a few hundred.
    kw.setdefault("loc", "best" if points <= 1000 else "upper right")
    for text in ax.legend(**kw).get_texts():
        text.set_parse_math(False)


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
    _prepare()
    n = max(1, len(plot.panels))
    fig = _figure(CURVES_WIDTH_IN, TITLE_HEIGHT_IN + PANEL_HEIGHT_IN * n)
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
    _x_axis(axes[-1], plot.x_max)
    _note(axes[0], plot.note)
    return _save(fig, fmt)


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def render_compare(plot: ComparePlot, fmt: Format) -> bytes:
    """One metric of several jobs on one axis, the legend beside it, as PNG or SVG bytes."""
    _prepare()
    fig = _figure(*COMPARE_SIZE_IN)
    ax = fig.subplots()
    fig.suptitle(plot.title, parse_math=False)
    for series, color in zip(plot.series, _colors(len(plot.series)), strict=True):
        _line(ax, series, color=color)
    ax.set_ylabel(plot.metric)
    if plot.log:
        _log(ax)
    x_max = max((e for s in plot.series for e in s.epochs), default=1)
    _x_axis(ax, x_max)
    _legend(ax, 0, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    _note(ax, plot.note)
    return _save(fig, fmt)
