"""A sweep's plots: optimization history, parallel coordinates, intermediate values,
parameter importance and, for sweeps that repeat each configuration over seeds, mean
curves with bands — one module each.

Like :mod:`service.plots.curves` and :mod:`service.plots.render` together: the ``*_plot``
functions turn plain data (:class:`SweepInfo`, :class:`TrialInfo`, never ORM rows) into
what a plot shows, and refuse with a 409 (``Conflict``) when there is nothing to draw yet;
the ``render_*`` functions draw it with matplotlib's object-oriented API (imported on the
first render, see :mod:`service.plots.mpl`), as PNG or SVG bytes.

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

from service.plots.mpl import DPI
from service.plots.sweeps.common import SweepInfo, TrialInfo, trial_info, trial_label
from service.plots.sweeps.comparison import (
    BANDS,
    COMPARISON_SIZE_IN,
    MAX_BANDS,
    Band,
    ComparisonPlot,
    ConfigRuns,
    comparison_plot,
    render_comparison,
)
from service.plots.sweeps.history import (
    HISTORY_SIZE_IN,
    HistoryPlot,
    history_plot,
    render_history,
)
from service.plots.sweeps.importance import ImportancePlot, importance_plot, render_importance
from service.plots.sweeps.intermediate import (
    INTERMEDIATE_SIZE_IN,
    IntermediatePlot,
    intermediate_plot,
    render_intermediate,
)
from service.plots.sweeps.parallel import (
    MISSING_Y,
    ParallelAxis,
    ParallelPlot,
    parallel_plot,
    render_parallel,
)

__all__ = [
    "BANDS",
    "KINDS",
    "MAX_BANDS",
    "MISSING_Y",
    "PIXELS",
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
    "trial_info",
    "trial_label",
]

#: The plots a sweep has, in the order the API lists them.
KINDS: tuple[str, ...] = ("history", "parallel", "intermediate", "importance", "comparison")

#: For tests: PNG sizes in pixels.
PIXELS = {
    "history": (round(HISTORY_SIZE_IN[0] * DPI), round(HISTORY_SIZE_IN[1] * DPI)),
    "intermediate": (round(INTERMEDIATE_SIZE_IN[0] * DPI), round(INTERMEDIATE_SIZE_IN[1] * DPI)),
    "comparison": (round(COMPARISON_SIZE_IN[0] * DPI), round(COMPARISON_SIZE_IN[1] * DPI)),
}
