"""Sweeps: many training jobs (trials) drawn from one spec and a search space.

A sweep row holds the spec — what the user sent, defaults filled, never rewritten — the
state of running it (``max_trials``, ``auto_bounds``) and the counters that make running
it safe from any number of processes at once: ``trials_created`` is advanced by a
conditional update (whoever moves it from n to n + 1 creates trial n, nobody else), and
``event_seq`` numbers the sweep's events. A trial is a configuration — one point of the
space — and runs as ``repeats`` jobs, one per seed; the jobs carry ``sweep_id``,
``trial_number`` and ``repeat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, StrEnumType, UTCDateTime, utcnow
from service.db_json import TypedJSON
from service.jobs.models import JobStatus


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


class AutoBounds(BaseModel):
    """The range test that sets a sweep's "auto" ends, and what it set."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    job_id: str = Field(description="The range-test job (GET /v1/jobs/{id}/result).")
    paths: list[str] = Field(description='The space\'s paths with an "auto" end.')
    bounds: dict[str, Annotated[list[float], Field(min_length=2, max_length=2)]] | None = Field(
        None,
        description="Path → [low, high] as the trials sample it; absent until the test ends.",
        examples=[{"optimizer.lr": [0.0014, 0.14]}],
    )
    lr_at_minimum: float | None = Field(
        None, description="The rate at the smoothed loss's minimum: the upper end."
    )
    why: str | None = Field(None, description="How the ends were chosen, in words.")


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[SweepKind] = mapped_column(StrEnumType(SweepKind, 16), default=SweepKind.SEARCH)
    status: Mapped[SweepStatus] = mapped_column(
        StrEnumType(SweepStatus, 16), default=SweepStatus.RUNNING
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    #: The validated sweep spec (service/sweeps/spec.py) as the user sent it, every
    #: default filled in (a search's max_trials, its sampler's seed, …).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    task: Mapped[str] = mapped_column(String(16))
    #: Trials it creates at most: a search's max_trials, a comparison's configurations.
    max_trials: Mapped[int] = mapped_column(Integer)
    #: With "auto" ends in the space: its range test, and the ends it set once it ended
    #: (the trials sample within them; the spec keeps saying "auto").
    auto_bounds: Mapped[AutoBounds | None] = mapped_column(TypedJSON(TypeAdapter(AutoBounds)))
    #: Trials created so far; trial n exists for every n below it.
    trials_created: Mapped[int] = mapped_column(Integer, default=0)
    #: The last event number handed out (see EpochMetric.sweep_seq).
    event_seq: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SweepTrial(Base):
    """One configuration of a sweep: the values it sets, and what Optuna needs to know
    about it to sample the next (its internal parameters, distributions and the
    sampler's notes)."""

    __tablename__ = "sweep_trials"

    sweep_id: Mapped[str] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: dotted path -> the value the trial's jobs have there
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: {"params": {...}, "distributions": {...}, "system_attrs": {...}} in Optuna's terms
    optuna: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
