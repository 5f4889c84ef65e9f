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

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, StrEnumType, UTCDateTime, utcnow
from service.db_json import TypedJSON
from service.projects.models import name_column
from service.sweeps.schemas import AutoBounds
from service.sweeps.states import SweepKind, SweepStatus


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
    #: The Celery queue its trials' messages go to (None: rows from before it was recorded).
    queue: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # -- organising (docs/search.md); its trials take its project -------------------
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), index=True
    )
    tags: Mapped[dict[str, str] | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    project_name: Mapped[str | None] = name_column(project_id)


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
