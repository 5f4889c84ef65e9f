"""A sweep's status and kind, and its trials' states: plain enums, importable by the
API's schemas and by clients without SQLAlchemy (service/sweeps/models.py stores them)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import ClassVar

from service.jobs.states import JobStatus


class SweepStatus(StrEnum):
    """A sweep is running from its creation until every trial it will have has ended:
    running → succeeded | failed | cancelled."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    #: Ended: no trial is created after this.
    TERMINAL: ClassVar[frozenset[SweepStatus]]


SweepStatus.TERMINAL = frozenset(SweepStatus) - {SweepStatus.RUNNING}


class SweepKind(StrEnum):
    """A search over a space, or a comparison of named configurations."""

    SEARCH = "sweep"
    COMPARISON = "comparison"


class TrialState(StrEnum):
    """A sweep's trial (one configuration, run as one job per seed), from its jobs'
    statuses: queued (all wait for a worker), running (one is queued or running),
    complete (every seed succeeded with a finite objective), pruned, failed (one failed
    or diverged, or a seed scored nothing) or cancelled."""

    # Derived by ``of`` only: the leaderboard, the counts and the event stream agree.

    QUEUED = "queued"  # every job waits for a worker (or it has none yet)
    RUNNING = "running"  # a job is queued or running
    COMPLETE = "complete"  # every seed succeeded with a finite objective
    PRUNED = "pruned"  # the pruner stopped it
    FAILED = "failed"  # a job failed or diverged, or a seed scored nothing
    CANCELLED = "cancelled"  # a job was cancelled (and none was pruned)

    @classmethod
    def of(cls, statuses: Sequence[JobStatus], *, scored: bool) -> TrialState:
        """The state of a trial whose jobs are in ``statuses``; ``scored``: every job has
        a finite objective."""
        if not statuses or any(s in JobStatus.ACTIVE for s in statuses):
            if all(s == JobStatus.QUEUED for s in statuses):
                return cls.QUEUED
            return cls.RUNNING
        if JobStatus.PRUNED in statuses:
            return cls.PRUNED
        if scored and all(s == JobStatus.SUCCEEDED for s in statuses):
            return cls.COMPLETE
        if JobStatus.CANCELLED in statuses:
            return cls.CANCELLED
        return cls.FAILED
