"""Sweeps: many training jobs (trials) drawn from one spec and a search space.

A sweep row holds the spec and the counters that make running it safe from any number
of processes at once: ``trials_created`` is advanced by a conditional update (whoever
moves it from n to n + 1 creates trial n, nobody else), and ``event_seq`` numbers the
sweep's events. A trial is a configuration — one point of the space — and runs as
``repeats`` jobs, one per seed; the jobs carry ``sweep_id``, ``trial_number`` and
``repeat``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow

#: A sweep is running from its creation until every trial it will have has ended.
SWEEP_RUNNING = "running"
SWEEP_SUCCEEDED, SWEEP_FAILED, SWEEP_CANCELLED = "succeeded", "failed", "cancelled"
SWEEP_STATUSES: tuple[str, ...] = (SWEEP_RUNNING, SWEEP_SUCCEEDED, SWEEP_FAILED, SWEEP_CANCELLED)
SWEEP_TERMINAL: frozenset[str] = frozenset({SWEEP_SUCCEEDED, SWEEP_FAILED, SWEEP_CANCELLED})

#: ``kind``: a search over a space, or a comparison of named configurations.
SEARCH, COMPARISON = "sweep", "comparison"


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default=SEARCH)
    status: Mapped[str] = mapped_column(String(16), default=SWEEP_RUNNING)
    status_reason: Mapped[str | None] = mapped_column(Text)
    #: The validated sweep spec (service/sweeps/spec.py), its base a full job spec.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    task: Mapped[str] = mapped_column(String(16))
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
