"""What the jobs API does, without HTTP: create, list, read, cancel, metrics."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.config import Settings
from service.datasets.models import Dataset
from service.db import utcnow
from service.errors import Conflict, Invalid, NotFound, Unavailable
from service.jobs.models import (
    CANCELLED,
    JOB_STATUSES,
    QUEUED,
    RUNNING,
    TERMINAL_STATUSES,
    EpochMetric,
    Job,
    JobAttempt,
)
from service.live import Notifier
from service.queue import Producer
from service.spec import (
    DatasetShape,
    FieldError,
    JobSpec,
    Limits,
    SpecError,
    UploadedDataset,
    check_job,
    estimate_memory_bytes,
)
from service.spec.common import metric_names

log = logging.getLogger(__name__)

#: Columns ``GET /v1/jobs?sort=`` accepts; a leading ``-`` sorts descending.
SORTABLE = {
    "created_at": Job.created_at,
    "started_at": Job.started_at,
    "finished_at": Job.finished_at,
    "name": Job.name,
    "status": Job.status,
    "epochs_completed": Job.epochs_completed,
}


def limits(settings: Settings) -> Limits:
    return Limits(
        settings.max_epochs,
        settings.max_parameters,
        settings.max_synthetic_samples,
        max_memory_bytes=settings.max_job_memory_mb * 2**20,
        max_seconds=settings.max_job_seconds,
    )


def dataset_shape(*, session: Session, spec: JobSpec, owner: str) -> DatasetShape:
    ds = spec.dataset
    if isinstance(ds, UploadedDataset):
        row = session.get(Dataset, ds.id)
        # Another user's dataset answers exactly as one that does not exist.
        if row is None or row.owner_id != owner:
            raise SpecError([FieldError("dataset.id", f"no uploaded dataset with id {ds.id!r}")])
        return DatasetShape(row.n_rows, row.n_features, row.task, row.n_classes)  # type: ignore[arg-type]
    return ds.known_shape()


def create(
    *, session: Session, settings: Settings, producer: Producer, spec: JobSpec, owner: str
) -> Job:
    """Validate ``spec`` against its dataset and the caps, commit ``owner``'s job, then
    enqueue it.

    The row is committed before the message is sent, so a worker always finds it. If the
    broker refuses the message the row is removed again: nothing half-written stays.
    """
    shape = dataset_shape(session=session, spec=spec, owner=owner)
    errors = check_job(spec, shape, limits(settings))
    if errors:
        raise SpecError(errors)
    job = new_job(spec, shape, owner)
    session.add(job)
    session.commit()
    try:
        producer.enqueue_training(job.id, job.dispatch)
    except Exception as exc:
        log.warning("could not enqueue job %s: %s", job.id, exc)
        session.delete(job)
        session.commit()
        raise Unavailable("the task broker is unavailable; the job was not created") from exc
    return job


def new_job(spec: JobSpec, shape: DatasetShape, owner: str, **columns: Any) -> Job:
    """A queued job row for a checked ``spec`` (not added to any session)."""
    return Job(
        id=str(uuid.uuid4()),
        owner_id=owner,
        name=spec.name or spec.default_name(),
        status=QUEUED,
        spec=spec.model_dump(mode="json"),
        task=shape.task,
        dataset_id=spec.dataset.id if isinstance(spec.dataset, UploadedDataset) else None,
        n_parameters=spec.model.count_parameters(shape),
        memory_estimate=estimate_memory_bytes(spec, shape),
        dispatch=1,
        dispatched_at=utcnow(),
        **columns,
    )


def attempts(*, session: Session, job: Job) -> list[JobAttempt]:
    return list(
        session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job.id).order_by(JobAttempt.attempt)
        ).all()
    )


def get(*, session: Session, job_id: str, owner: str) -> Job:
    """``owner``'s job; anyone else's answers exactly as a job that does not exist."""
    job = session.get(Job, job_id)
    if job is None or job.owner_id != owner:
        raise NotFound(f"no job with id {job_id!r}")
    return job


def list_jobs(
    *, session: Session, owner: str, statuses: Sequence[str], sort: str, limit: int, offset: int
) -> tuple[list[Job], int]:
    """``owner``'s jobs: filters, sort and total see no one else's."""
    bad = [s for s in statuses if s not in JOB_STATUSES]
    if bad:
        raise Invalid(
            f"status: unknown status {bad[0]!r}",
            fields=[FieldError("status", f"unknown status {bad[0]!r}", list(JOB_STATUSES))],
        )
    key = sort.removeprefix("-")
    if key not in SORTABLE:
        allowed = [*SORTABLE, *(f"-{k}" for k in SORTABLE)]
        raise Invalid(
            f"sort: cannot sort by {sort!r}",
            fields=[FieldError("sort", f"cannot sort by {sort!r}", allowed)],
        )
    column = SORTABLE[key]
    query = select(Job).where(Job.owner_id == owner)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = column.desc() if sort.startswith("-") else column.asc()
    rows = session.scalars(query.order_by(order, Job.id).limit(limit).offset(offset)).all()
    return list(rows), total


def cancel(*, session: Session, notifier: Notifier, job_id: str, owner: str) -> Job:
    """A queued job is cancelled at once and never starts; a running one is asked to stop
    and does so at its next batch boundary."""
    job = get(session=session, job_id=job_id, owner=owner)
    if job.status in TERMINAL_STATUSES:
        raise Conflict(f"job {job_id} already ended as {job.status}; nothing to cancel")
    # Conditional updates, so a worker that claims the job at the same moment cannot
    # both start it and have it marked cancelled.
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == QUEUED)
        .values(
            status=CANCELLED,
            status_reason="cancelled before it started",
            cancel_requested=True,
            finished_at=utcnow(),
        )
    ).rowcount
    if not done:
        session.execute(
            update(Job).where(Job.id == job_id, Job.status == RUNNING).values(cancel_requested=True)
        )
    session.commit()
    notifier.job_changed(job_id)
    session.refresh(job)
    return job


def metrics(
    *,
    session: Session,
    job: Job,
    names: Sequence[str],
    epoch_from: int | None,
    epoch_to: int | None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows of ``epoch`` plus the asked-for metrics (all when ``names`` is empty)."""
    known = list(metric_names(job.task))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Invalid(
            f"names: unknown metric {unknown[0]!r} for a {job.task} job",
            fields=[FieldError("names", f"unknown metric {unknown[0]!r}", known)],
        )
    query = select(EpochMetric).where(EpochMetric.job_id == job.id)
    if epoch_from is not None:
        query = query.where(EpochMetric.epoch >= epoch_from)
    if epoch_to is not None:
        query = query.where(EpochMetric.epoch <= epoch_to)
    rows = session.scalars(query.order_by(EpochMetric.epoch)).all()
    if names:
        columns = ["epoch", *(n for n in names if n != "epoch")]
    else:
        present = {k for r in rows for k in r.values}
        columns = [n for n in known if n in present] or ["epoch"]
    out = [{c: (r.epoch if c == "epoch" else r.values.get(c)) for c in columns} for r in rows]
    return columns, out
