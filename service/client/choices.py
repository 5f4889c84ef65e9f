"""The fixed vocabularies a client sends or reads: statuses, chart kinds, image formats.

StrEnums, so each member is its own string on the wire and in comparisons, and typer
offers them as choices.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "JOB_ENDED",
    "SWEEP_ENDED",
    "ImageFormat",
    "JobKind",
    "JobStatus",
    "LabPlot",
    "SweepKind",
    "SweepPlot",
    "SweepStatus",
]


class JobStatus(StrEnum):
    """``queued → running → succeeded | failed | cancelled | diverged`` (``pruned``: a
    sweep's trial stopped early)."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    diverged = "diverged"
    pruned = "pruned"


class SweepStatus(StrEnum):
    """``running → succeeded | failed | cancelled``."""

    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


#: The statuses a job ends in (strings, so any answer can be looked up).
JOB_ENDED = frozenset(s.value for s in JobStatus if s not in (JobStatus.queued, JobStatus.running))
#: The statuses a sweep ends in.
SWEEP_ENDED = frozenset(s.value for s in SweepStatus if s is not SweepStatus.running)


class ImageFormat(StrEnum):
    png = "png"
    svg = "svg"


class SweepPlot(StrEnum):
    """A sweep's charts: ``GET /v1/sweeps/{id}/plots/{kind}.{png|svg}``."""

    history = "history"
    parallel = "parallel"
    intermediate = "intermediate"
    importance = "importance"
    comparison = "comparison"


class LabPlot(StrEnum):
    """A lab job's charts: ``GET /v1/jobs/{id}/plots/{view}.{png|svg}``."""

    range_test = "range_test"
    interpolation = "interpolation"
    contour = "contour"
    surface = "surface"


class JobKind(StrEnum):
    """What a job runs: training, an LR range test, or a loss landscape."""

    train = "train"
    lr_range_test = "lr_range_test"
    landscape = "landscape"


class SweepKind(StrEnum):
    """A search over a space, or a comparison of named configurations over seeds."""

    sweep = "sweep"
    comparison = "comparison"
