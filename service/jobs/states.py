"""A job's status and kind: plain enums, importable by the API's schemas and by clients
without SQLAlchemy (service/jobs/models.py stores them)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

# The docstrings of these enums are their descriptions in the API's OpenAPI document.
# Each member is stored as its plain string (no database enum) and equals that string.
# Every change of a job's status is a function of service/jobs/lifecycle.py.


class JobStatus(StrEnum):
    """Where a job is in its life: queued → running → succeeded | failed | cancelled |
    diverged | pruned (a sweep's trial its pruner stopped early)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DIVERGED = "diverged"
    #: A sweep's trial stopped early by its pruner (it looked worse than its peers).
    PRUNED = "pruned"

    #: Waiting for a worker or on one: the job may still change.
    ACTIVE: ClassVar[frozenset[JobStatus]]
    #: Ended: nothing changes a job in one of these again.
    TERMINAL: ClassVar[frozenset[JobStatus]]

    @property
    def terminal(self) -> bool:
        return self in JobStatus.TERMINAL


JobStatus.ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
JobStatus.TERMINAL = frozenset(JobStatus) - JobStatus.ACTIVE


class JobKind(StrEnum):
    """What a job runs: train; lr_range_test (a learning-rate range test of its spec);
    landscape (the loss landscape of a finished training job)."""

    # The values of the spec's ``kind`` (service/spec/lab.py); a test keeps them equal.

    TRAIN = "train"
    LR_RANGE_TEST = "lr_range_test"
    LANDSCAPE = "landscape"
