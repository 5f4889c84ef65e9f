"""Training jobs and their per-epoch metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, StrEnumType, UTCDateTime, utcnow
from service.db_json import TypedJSON
from service.jobs.states import JobKind, JobStatus
from service.projects.models import name_column
from service.spec.results import JOB_RESULT, JobResult

#: The columns the job search reads (docs/search.md): JSONB on PostgreSQL, parsed once when
#: written rather than at every read, which is what makes a filter over 100,000 jobs fast
#: (benchmarks/search.py). JSONB keeps no key order: ``spec`` reads back with its keys
#: sorted there.
SearchJSON = JSON().with_variant(JSONB(), "postgresql")


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[JobKind] = mapped_column(
        StrEnumType(JobKind, 32), default=JobKind.TRAIN, index=True
    )
    status: Mapped[JobStatus] = mapped_column(StrEnumType(JobStatus, 16), default=JobStatus.QUEUED)
    status_reason: Mapped[str | None] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(SearchJSON)
    task: Mapped[str] = mapped_column(String(16))
    dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    n_parameters: Mapped[int] = mapped_column(Integer)
    memory_estimate: Mapped[int | None] = mapped_column(BigInteger)  # bytes
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    epochs_completed: Mapped[int] = mapped_column(Integer, default=0)
    stop_epoch: Mapped[int | None] = mapped_column(Integer)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    best_value: Mapped[float | None] = mapped_column(Float)
    final_metrics: Mapped[dict[str, float] | None] = mapped_column(SearchJSON)
    device: Mapped[str | None] = mapped_column(String(32))
    worker: Mapped[str | None] = mapped_column(String(255))
    has_model: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The saved weights come with ``model.json`` and ``model.onnx`` (service/spec/bundle.py);
    #: false for jobs that succeeded before bundles existed: they have ``model.pt`` only.
    has_bundle: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The epoch whose weights were saved (the best one under ``restore_best_weights``,
    #: else the last) and its metrics; ``final_metrics`` are always the last epoch's.
    saved_epoch: Mapped[int | None] = mapped_column(Integer)
    saved_metrics: Mapped[dict[str, float | None] | None] = mapped_column(SearchJSON)
    #: Per metric, its best value over the recorded epochs (max of accuracies and r2, min
    #: of the rest), set when the job ends.
    best_metrics: Mapped[dict[str, float | None] | None] = mapped_column(SearchJSON)
    # The lease: the attempt now allowed to write (0 before the first) and when it last
    # proved it is alive. Every worker write is conditional on ``attempt``, so an
    # attempt whose lease was taken over can write nothing more.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped each time a message is sent for the job: a message carrying an older
    # number is a leftover (redelivered, or re-sent by the reaper) and is dropped.
    dispatch: Mapped[int] = mapped_column(Integer, default=1)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The Celery queue its messages go to (the API's ``DESCENT_QUEUE`` when it was
    #: submitted, a sweep's for its trials): every re-send goes there too. None: rows from
    #: before it was recorded, sent to the sender's own queue.
    queue: Mapped[str | None] = mapped_column(String(200))
    #: The worker (``workers.id``) that received the message of the current dispatch and
    #: has not started it yet; the reaper re-sends at once when that worker is gone.
    held_by: Mapped[str | None] = mapped_column(String(255))
    held_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A sweep's trial (service/sweeps): which sweep, which trial, which of its seeds.
    sweep_id: Mapped[str | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), index=True
    )
    trial_number: Mapped[int | None] = mapped_column(Integer)
    repeat: Mapped[int | None] = mapped_column(Integer)
    #: The sweep's objective as measured so far (best or last epoch, as the sweep says).
    objective: Mapped[float | None] = mapped_column(Float)
    #: What the pruner saw: {step: objective so far}, and what it noted (Optuna's trial
    #: system attributes, e.g. the rungs ASHA promoted it through).
    intermediate: Mapped[dict[str, float] | None] = mapped_column(JSON)
    pruner_attrs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: What a lab job found (a range test's suggestions, a landscape's grids), or for a
    #: training job with ``"auto"`` rates the range test's choice: one of the records of
    #: service/spec/results.py, by its ``kind``.
    result: Mapped[JobResult | None] = mapped_column(TypedJSON(JOB_RESULT))
    #: A landscape job: the job whose weights it studies. No foreign key: deleting that
    #: job leaves the finished landscape as it is.
    source_job_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # -- organising (docs/search.md): a project, key/value tags and a note -------------
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), index=True
    )
    #: {key: value}; None (no tags) reads as {}.
    tags: Mapped[dict[str, str] | None] = mapped_column(SearchJSON)
    note: Mapped[str | None] = mapped_column(Text)
    #: The project's name, read with the row.
    project_name: Mapped[str | None] = name_column(project_id)

    __table_args__ = (
        # The list endpoint filters by status and sorts by creation time.
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_created_at", "created_at"),
        # The reaper looks for running jobs with an old heartbeat.
        Index("ix_jobs_status_heartbeat_at", "status", "heartbeat_at"),
        # A user's jobs newest first, and filtered by status (GET /v1/jobs, the search).
        Index("ix_jobs_owner_id_created_at", "owner_id", "created_at", "id"),
        Index("ix_jobs_owner_id_status_created_at", "owner_id", "status", "created_at"),
        # PostgreSQL: a filter's equalities on spec fields and tags also ask for
        # containment (``spec @> …``), which these answer (service/search/sql.py).
        Index(
            "ix_jobs_spec_gin",
            "spec",
            postgresql_using="gin",
            postgresql_ops={"spec": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_jobs_tags_gin",
            "tags",
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
    )


class JobAttempt(Base):
    """One attempt at running a job: who ran it, where it resumed from, how it ended."""

    __tablename__ = "job_attempts"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker: Mapped[str | None] = mapped_column(String(255))
    resumed_from_epoch: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the job's status if this attempt finished it, else why it ended ("lost", "superseded").
    outcome: Mapped[str | None] = mapped_column(String(255))


class EpochMetric(Base):
    """One epoch's metrics. The primary key makes a repeated write of an epoch impossible."""

    __tablename__ = "epoch_metrics"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    values: Mapped[dict[str, float]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: What the epoch used: {"device", "rss_peak_bytes", "cuda_max_allocated_bytes"?}.
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: For a sweep's trial: the sweep's event number of this record. Taken from the sweep
    #: row (``Sweep.event_seq``) inside the recording transaction, so numbers become
    #: visible in order and a sweep's event stream resumes from one number.
    sweep_seq: Mapped[int | None] = mapped_column(Integer, index=True)


# ``jobs.sweep_id`` refers to the sweeps table: its model must be in the same metadata.
import service.sweeps.models  # noqa: E402, F401
