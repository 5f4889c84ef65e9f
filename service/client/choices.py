"""The fixed vocabularies a client sends or reads: statuses, chart kinds, image formats.

StrEnums, so each member is its own string on the wire and in comparisons, and typer
offers them as choices. Statuses and kinds are the server's own (they carry no SQL).
"""

from __future__ import annotations

from enum import StrEnum

from service.jobs.states import JobKind, JobStatus
from service.sweeps.states import SweepKind, SweepStatus

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


#: The statuses a job ends in (strings, so any answer can be looked up).
JOB_ENDED = frozenset(s.value for s in JobStatus.TERMINAL)
#: The statuses a sweep ends in.
SWEEP_ENDED = frozenset(s.value for s in SweepStatus.TERMINAL)


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
