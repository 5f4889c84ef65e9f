"""What a plot shows, as plain data: panels of series, built from jobs and their epochs.

Nothing here draws or touches the database: the router loads, this module decides what
goes where (and refuses what cannot be drawn, naming the query parameter), ``render``
draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import Invalid
from service.jobs.states import JobStatus
from service.spec import FieldError, metric_names
from service.spec.common import TASK_METRICS

__all__ = [
    "ALL_PLOTTABLE",
    "AUTO_LOG_RATIO",
    "LOG_WORDS",
    "MAX_DRAWN",
    "CompareJob",
    "ComparePlot",
    "CurvesPlot",
    "Panel",
    "Series",
    "choose_log",
    "check_compare_metric",
    "choose_metrics",
    "compare_plot",
    "curves_plot",
    "default_metrics",
    "panel_key",
    "plottable",
    "to_float",
]

#: ``log=`` words besides metric names: ``all``/``true`` every panel, ``false`` none.
LOG_WORDS = ("all", "true", "false")
#: Without ``log=``, a panel whose values are all positive and span this factor or more
#: (a 1cycle rate, a diverging loss) gets a logarithmic axis.
AUTO_LOG_RATIO = 1e3
#: Values larger than this (in magnitude) draw as gaps, like inf: a diverged job's 1e308
#: would overflow the axis arithmetic, and no scale that shows it shows anything else.
MAX_DRAWN = 1e100
#: Panels shared by metric families; every other metric has a panel of its own.
_FAMILIES = ("_loss", "_accuracy", "_mse")
#: The task's quality panel in the default plot.
_QUALITY = {"classification": ("train_accuracy", "val_accuracy"), "regression": ("val_r2",)}


def plottable(task: str) -> list[str]:
    """The metrics a job of ``task`` may record, but ``epoch`` (the x axis)."""
    return [m for m in metric_names(task) if m != "epoch"]


#: Every metric name some task records, in a stable order.
ALL_PLOTTABLE: list[str] = list(dict.fromkeys(m for task in TASK_METRICS for m in plottable(task)))


def default_metrics(task: str) -> list[str]:
    """Losses, the task's quality metric(s) and the applied learning rate."""
    return ["train_loss", "val_loss", *_QUALITY.get(task, ()), "lr"]


def panel_key(metric: str) -> str:
    """Which panel ``metric`` goes to: ``loss`` for every ``*_loss``, likewise
    ``accuracy`` and ``mse``; any other metric is a panel of its own."""
    for suffix in _FAMILIES:
        if metric.endswith(suffix):
            return suffix[1:]
    return metric


def to_float(value: Any) -> float:
    """A recorded value as a float; NaN for anything not a finite number (a diverged
    job's inf or NaN, a JSON null, a value of the wrong type) or past ``MAX_DRAWN``, so
    that it draws as a gap."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    try:
        out = float(value)
    except OverflowError:  # an int past float's range
        return math.nan
    return out if math.isfinite(out) and abs(out) <= MAX_DRAWN else math.nan


# -- the data ------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line: ``key`` names it in the SVG (``series-<key>``), ``label`` in the legend."""

    key: str
    label: str
    epochs: tuple[int, ...]
    values: tuple[float, ...]  # NaN where nothing finite was recorded

    @property
    def finite(self) -> list[float]:
        return [v for v in self.values if not math.isnan(v)]


@dataclass(frozen=True)
class Panel:
    title: str  # also the y label
    series: tuple[Series, ...]
    log: bool


@dataclass(frozen=True)
class CurvesPlot:
    """One job's learning curves."""

    title: str
    panels: tuple[Panel, ...]
    best_epoch: int | None
    x_max: int  # the axis runs to the planned epochs while the job may still add some
    note: str | None  # said in the plot: "no epochs recorded yet"
    live: bool  # the job may still record epochs: the image must not be cached
    filename: str  # without the extension


@dataclass(frozen=True)
class ComparePlot:
    """One metric of several jobs on one axis."""

    title: str
    metric: str
    series: tuple[Series, ...]
    log: bool
    note: str | None
    live: bool


# -- choosing what to draw -------------------------------------------------------------


def choose_metrics(task: str, requested: Sequence[str]) -> list[str]:
    """``metrics=`` (the default panels when empty), checked against the task's metrics."""
    allowed = plottable(task)
    for name in requested:
        if name not in allowed:
            raise Invalid(
                f"metrics: a {task} job records no metric {name!r}",
                fields=[FieldError("metrics", f"unknown metric {name!r}", allowed)],
            )
    return list(dict.fromkeys(requested)) or default_metrics(task)


def choose_log(requested: Sequence[str], metrics: Sequence[str]) -> set[str] | None:
    """``log=``: the panels (by metric) to draw on a log axis; None for the automatic
    choice (no ``log=`` at all). ``all``/``true`` is every panel, ``false`` none."""
    if not requested:
        return None
    allowed = [*metrics, *LOG_WORDS]
    chosen: set[str] = set()
    for name in requested:
        if name not in allowed:
            why = "is not plotted" if name in ALL_PLOTTABLE else "is not a metric"
            raise Invalid(
                f"log: {name!r} {why}; name plotted metrics, or all, true or false",
                fields=[FieldError("log", f"{name!r} {why}", allowed)],
            )
        if name in ("all", "true"):
            chosen |= set(metrics)
        elif name != "false":
            chosen.add(name)
    return chosen


def _auto_log(series: Sequence[Series]) -> bool:
    values = [v for s in series for v in s.finite]
    if not values or min(values) <= 0:
        return False
    return max(values) / min(values) >= AUTO_LOG_RATIO


def _series(key: str, label: str, rows: Sequence[Mapping[str, Any]], metric: str) -> Series:
    points = [(int(r["epoch"]), to_float(r.get(metric))) for r in rows]
    return Series(key, label, tuple(e for e, _ in points), tuple(v for _, v in points))


def curves_plot(
    *,
    name: str,
    job_id: str,
    status: str,
    planned_epochs: int,
    best_epoch: int | None,
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    log: set[str] | None,
) -> CurvesPlot:
    """The panels of one job: ``rows`` are its epochs (``{"epoch": 1, "val_loss": …}``),
    ``metrics`` and ``log`` what :func:`choose_metrics` and :func:`choose_log` gave."""
    groups: dict[str, list[str]] = {}
    for metric in metrics:
        groups.setdefault(panel_key(metric), []).append(metric)
    panels = []
    for title, members in groups.items():
        series = tuple(_series(m, m, rows, m) for m in members)
        wanted = _auto_log(series) if log is None else bool(log & set(members))
        # A log axis needs something positive to show.
        drawable = any(v > 0 for s in series for v in s.finite)
        panels.append(Panel(title, series, wanted and drawable))
    done = len(rows)
    recorded = max((int(r["epoch"]) for r in rows), default=0)
    live = status not in JobStatus.TERMINAL
    return CurvesPlot(
        title=f"{name} · {status} · {done}/{planned_epochs} epochs",
        panels=tuple(panels),
        best_epoch=best_epoch,
        x_max=max(recorded, planned_epochs if live else 1, 1),
        note=None if rows else "no epochs recorded yet",
        live=live,
        filename=f"{name}-{job_id[:8]}",
    )


@dataclass(frozen=True)
class CompareJob:
    """What a comparison needs of one job."""

    id: str
    task: str
    status: str
    rows: Sequence[Mapping[str, Any]]  # empty when its task does not record the metric


def check_compare_metric(metric: str, tasks: Sequence[str] | None = None) -> None:
    """A 422 naming ``metric`` unless some task (of ``tasks``; of any task when None)
    records it."""
    allowed = (
        ALL_PLOTTABLE
        if tasks is None
        else list(dict.fromkeys(m for t in tasks for m in plottable(t)))
    )
    if metric not in allowed:
        whose = "any task" if tasks is None else "these jobs' tasks"
        raise Invalid(
            f"metric: {whose} record no metric {metric!r}",
            fields=[FieldError("metric", f"unknown metric {metric!r}", allowed)],
        )


def compare_plot(
    *, jobs: Sequence[CompareJob], labels: Sequence[str], metric: str, log: bool
) -> ComparePlot:
    """``metric`` of each of ``jobs``, labelled by ``labels`` (see :mod:`.labels`)."""
    series = tuple(
        _series(job.id, label, job.rows, metric) for job, label in zip(jobs, labels, strict=True)
    )
    drawable = any(v > 0 for s in series for v in s.finite)
    return ComparePlot(
        title=f"{metric} of {len(jobs)} job{'s' if len(jobs) != 1 else ''}",
        metric=metric,
        series=series,
        log=log and drawable,
        note=None if any(job.rows for job in jobs) else "no epochs recorded yet",
        live=any(job.status not in JobStatus.TERMINAL for job in jobs),
    )
