"""matplotlib for every plot the API draws: set up once, a figure per render, PNG or SVG.

matplotlib is imported on the first render (:func:`prepare`), never when the API starts.
Only its object-oriented API is used (a ``Figure`` of our own and the Agg canvas), never
pyplot, whose current-figure state is global: each render owns its figure, so renders
may run in parallel threads. The settings they need (text kept as text in SVG, stable
SVG ids) are set once, process-wide, at the first render: ``rc_context`` would set and
then restore the global ``rcParams`` around each render, and two renders in parallel
would restore each other's settings while drawing.

Text that users wrote (job and sweep names, labels, categorical values) is drawn with
``parse_math`` off (:func:`no_math`): a job named ``$x$`` is a name, not TeX.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, cast

__all__ = [
    "DPI",
    "FORMATS",
    "LEGEND_WRAP",
    "MEDIA_TYPES",
    "Format",
    "colors",
    "epoch_axis",
    "figure",
    "no_math",
    "prepare",
    "save",
]

Format = Literal["png", "svg"]
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml"}
FORMATS: tuple[str, ...] = tuple(MEDIA_TYPES)
#: PNG resolution: figure sizes are in inches, so pixels = inches × DPI.
DPI = 100
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


def prepare() -> None:
    """Import and configure matplotlib once per process (thread-safe); every render
    calls it first."""
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
        # matplotlib types its keys as a Literal of every name; ours are checked at run time.
        cast(dict[str, Any], matplotlib.rcParams).update(_RC)
        _ready = True


def figure(width: float, height: float) -> Any:
    """A figure of its own (inches), on an Agg canvas, laid out by constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, fmt: Format) -> bytes:
    """The figure as PNG or SVG bytes; the same plot gives the same SVG bytes."""
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"unknown plot format {fmt!r}; one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    # No date in the SVG: the same plot renders to the same bytes.
    metadata = {"Date": None} if fmt == "svg" else None
    fig.savefig(buf, format=fmt, dpi=DPI, metadata=metadata)
    return buf.getvalue()


def colors(n: int) -> list[Any]:
    """``n`` distinct colours for ``n`` series (tab10, or tab20 beyond ten, cycled)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def epoch_axis(ax: Any, x_max: int) -> None:
    """An x axis of epochs 1..``x_max``: integer ticks, a little room at both ends."""
    from matplotlib.ticker import MaxNLocator

    pad = max(0.5, 0.01 * (x_max - 1)) if x_max > 1 else 0.5
    ax.set_xlim(1 - pad, x_max + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def no_math(texts: Iterable[Any]) -> None:
    """Draw these texts (a legend's, tick labels) as written: users' text is not TeX."""
    for text in texts:
        text.set_parse_math(False)
