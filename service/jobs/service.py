"""What the jobs API does, without HTTP: create, list, read, cancel, metrics."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.config import Settings
from service.datasets.models import Dataset
from service.db import utcnow
from service.errors import Conflict, Invalid, Unavailable
from service.jobs import lifecycle
from service.jobs.models import EpochMetric, Job, JobAttempt
from service.jobs.schemas import RangeTestResultRead, ResultRead
from service.jobs.states import JobKind, JobStatus
from service.live import Notifier
from service.owned import get_owned
from service.projects import service as projects
from service.projects.schemas import LabelsUpdate, Organised
from service.queue import Producer
from service.search import sql as search
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
from service.spec.lab import RangeTest
from service.spec.results import (
    AutoLrRecord,
    AutoLrSummary,
    JobResult,
    LandscapeRecord,
    RangeCurve,
    RangeTestRecord,
)
from service.spec.validate import kind_errors

log = logging.getLogger(__name__)


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
    *,
    session: Session,
    settings: Settings,
    producer: Producer,
    spec: JobSpec,
    owner: str,
    labels: Organised | None = None,
) -> Job:
    """Validate ``spec`` against its dataset and the caps, commit ``owner``'s job, then
    enqueue it.

    The row is committed before the message is sent, so a worker always finds it. If the
    broker refuses the message the row is removed again: nothing half-written stays.
    """
    columns: dict[str, Any] = {}
    if errors := kind_errors(spec):
        raise SpecError(errors)
    if spec.kind == JobKind.LANDSCAPE:
        spec = landscape_spec(session=session, spec=spec, owner=owner)
        columns["source_job_id"] = spec.landscape.job_id  # type: ignore[union-attr]
    shape = dataset_shape(session=session, spec=spec, owner=owner)
    errors = check_job(spec, shape, limits(settings))
    if errors:
        raise SpecError(errors)
    job = new_job(spec, shape, owner, queue=settings.queue, **columns)
    if labels is not None:
        projects.organise(session=session, owner=owner, row=job, labels=labels)
    session.add(job)
    session.commit()
    try:
        producer.enqueue_training(job.id, job.dispatch, job.queue)
    except Exception as exc:
        log.warning("could not enqueue job %s: %s", job.id, exc, extra={"job_id": job.id})
        session.delete(job)
        session.commit()
        raise Unavailable("the task broker is unavailable; the job was not created") from exc
    # The first line of a job's log, to join the worker's by job_id (docs/logging.md);
    # the spec stays out of it (dataset paths, names a user may not want logged).
    log.info(
        "job %s created (%s, dispatch %d)",
        job.id,
        spec.kind,
        job.dispatch,
        extra={"job_id": job.id, "dispatch": job.dispatch},
    )
    return job


#: What a landscape takes from the job it studies rather than from its own spec.
FROM_SOURCE = ("dataset", "model", "optimizer", "schedule", "regularization", "training")


def _resolve_auto_rates(doc: dict[str, Any], result: JobResult | None) -> None:
    """Write the rate a studied job's range test chose over its ``"auto"`` fields: a
    landscape is not a training job, and takes no range test."""
    if not isinstance(result, AutoLrRecord):
        return
    value = result.auto_lr.value
    if doc["optimizer"].get("lr") == "auto":
        doc["optimizer"] = {**doc["optimizer"], "lr": value}
    if (doc.get("schedule") or {}).get("max_lr") == "auto":
        doc["schedule"] = {**doc["schedule"], "max_lr": value}


def landscape_spec(*, session: Session, spec: JobSpec, owner: str) -> JobSpec:
    """A landscape job's full spec: the studied job's dataset, model, optimizer, schedule,
    regularization and training sections with this spec's ``landscape`` settings, so the
    stored spec says how the weights it studies were trained (an ``"auto"`` rate as the
    value the range test chose). That job must be ``owner``'s, a succeeded training job
    with saved weights, and for ``directions: pca`` one that kept its trajectory."""
    settings = spec.landscape
    assert settings is not None  # JobSpec checks kind landscape has it
    ignored = {*FROM_SOURCE, "range_test"}
    sent = sorted(ignored & spec.model_fields_set)
    if sent:
        raise SpecError(
            [
                FieldError(name, "a landscape takes this from the job it studies; leave it out")
                for name in sent
            ]
        )
    source = session.get(Job, settings.job_id)
    field = "landscape.job_id"
    if source is None or source.owner_id != owner:
        raise SpecError([FieldError(field, f"no job with id {settings.job_id!r}")])
    if source.kind != JobKind.TRAIN:
        message = f"job {source.id} is a {source.kind} job, not a training job"
        raise SpecError([FieldError(field, message)])
    if source.status != JobStatus.SUCCEEDED or not source.has_model:
        raise SpecError(
            [
                FieldError(
                    field,
                    f"job {source.id} is {source.status}; a landscape needs a succeeded job "
                    "with saved weights",
                )
            ]
        )
    if settings.directions == "pca" and not source.spec["training"].get("save_trajectory"):
        raise SpecError(
            [
                FieldError(
                    "landscape.directions",
                    f"pca needs the weights of every epoch, and job {source.id} did not keep "
                    "them; train with training.save_trajectory: true, or use random",
                    ["random"],
                )
            ]
        )
    doc = {name: source.spec[name] for name in FROM_SOURCE}
    _resolve_auto_rates(doc, source.result)
    name = spec.name or f"landscape of {source.name}"[:200]
    return JobSpec.model_validate(
        {**doc, "kind": "landscape", "name": name, "landscape": settings.model_dump(mode="json")}
    )


def total_rows(spec: dict[str, Any]) -> int:
    """What a job's progress counts up to, from its stored spec: epochs, a range test's
    steps or a landscape's grid rows."""
    kind = spec.get("kind", JobKind.TRAIN)
    if kind == JobKind.LR_RANGE_TEST:
        steps = (spec.get("range_test") or {}).get("steps")
        return int(steps or RangeTest.model_fields["steps"].default)
    if kind == JobKind.LANDSCAPE:
        return int(spec["landscape"]["resolution"])
    return int(spec["training"]["epochs"])


def new_job(spec: JobSpec, shape: DatasetShape, owner: str, **columns: Any) -> Job:
    """A queued job row for a checked ``spec`` (not added to any session)."""
    return Job(
        id=str(uuid.uuid4()),
        owner_id=owner,
        name=spec.name or spec.default_name(),
        kind=spec.kind,
        status=JobStatus.QUEUED,
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
    """``owner``'s job; anyone else's answers exactly as one that does not exist."""
    return get_owned(session, Job, job_id, owner=owner, what="job")


def list_jobs(
    *,
    session: Session,
    owner: str,
    statuses: Sequence[str],
    sort: str,
    limit: int,
    offset: int,
    kinds: Sequence[str] = (),
    name: str | None = None,
    project: str | None = None,
    filter: str | None = None,
) -> tuple[list[Job], int]:
    """``owner``'s jobs: filters, sort and total see no one else's. ``name`` matches any
    part of a job's name, ignoring case (``%`` and ``_`` are plain characters);
    ``project`` is a project's name; ``filter`` and ``sort`` are docs/search.md's."""
    for field, values, choices in (("status", statuses, JobStatus), ("kind", kinds, JobKind)):
        allowed = [c.value for c in choices]
        bad = [v for v in values if v not in allowed]
        if bad:
            raise Invalid(
                f"{field}: unknown {field} {bad[0]!r}",
                fields=[FieldError(field, f"unknown {field} {bad[0]!r}", allowed)],
            )
    dialect = session.get_bind().dialect.name
    order = search.order_by(sort, dialect)
    where = [Job.owner_id == owner]
    if statuses:
        where.append(Job.status.in_(statuses))
    if kinds:
        where.append(Job.kind.in_(kinds))
    if name:
        pattern = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(Job.name.ilike(f"%{pattern}%", escape="\\"))
    if project is not None:
        found = projects.find(session=session, owner=owner, name=project)
        if found is None:
            return [], 0  # no such project: nothing in it
        where.append(Job.project_id == found.id)
    if filter:
        where.append(search.filter_clause(filter, dialect))
    # The count reads the jobs table alone (not the columns a page shows): an exact
    # total, on the same indexes as the page.
    total = session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    query = select(Job).where(*where).order_by(*order).limit(limit).offset(offset)
    rows = session.scalars(query).all()
    return list(rows), total


def relabel(*, session: Session, job_id: str, owner: str, update: LabelsUpdate) -> Job:
    """``PATCH /v1/jobs/{id}``: change a job's tags, note or project (any status)."""
    job = get(session=session, job_id=job_id, owner=owner)
    projects.relabel(session=session, owner=owner, row=job, update=update)
    session.commit()
    session.refresh(job)
    return job


def cancel(*, session: Session, notifier: Notifier, job_id: str, owner: str) -> Job:
    """A queued job is cancelled at once and never starts; a running one is asked to stop
    and does so at its next batch boundary."""
    job = get(session=session, job_id=job_id, owner=owner)
    if job.status in JobStatus.TERMINAL:
        raise Conflict(f"job {job_id} already ended as {job.status}; nothing to cancel")
    # Transitions are conditional updates: a worker that claims the job at the same
    # moment cannot both start it and have it marked cancelled.
    if not lifecycle.cancel_queued(session, job_id=job_id, now=utcnow()):
        lifecycle.request_stop(session, job_id=job_id)
    session.commit()
    notifier.job_changed(job_id)
    session.refresh(job)
    return job


def result(*, session: Session, job: Job) -> ResultRead:
    """``GET …/result``: the job's result; a range test's with its curve (its metrics
    rows). 409 while there is none."""
    if job.result is None:
        if job.kind == JobKind.TRAIN and not JobSpec.model_validate(job.spec).auto_lr:
            why = 'it is a training job without "auto" rates; see its metrics'
        elif job.status in JobStatus.TERMINAL:
            why = f"it ended as {job.status} without one"
        else:
            why = f"it is {job.status}; try again when it has ended"
        raise Conflict(f"job {job.id} has no result: {why}")
    found: RangeTestResultRead | LandscapeRecord | AutoLrRecord
    if isinstance(job.result, RangeTestRecord):
        _, rows = metrics(session=session, job=job, names=(), epoch_from=None, epoch_to=None)
        curve = RangeCurve(
            step=[r["epoch"] for r in rows],
            **{n: [r.get(n) for r in rows] for n in ("lr", "loss", "smoothed_loss")},
        )
        found = RangeTestResultRead(**dict(job.result), curve=curve)
    else:
        found = job.result
    return ResultRead(job_id=job.id, kind=job.kind, status=job.status, result=found)


def auto_lr(job: Job) -> AutoLrSummary | None:
    """What the job's ``"auto"`` rates became (``JobRead.auto_lr``), without the range
    test's curve (that is in ``…/result``)."""
    return job.result.auto_lr.summary() if isinstance(job.result, AutoLrRecord) else None


def metrics(
    *,
    session: Session,
    job: Job,
    names: Sequence[str],
    epoch_from: int | None,
    epoch_to: int | None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows of ``epoch`` plus the asked-for metrics (all when ``names`` is empty)."""
    known = list(metric_names(job.task, job.kind))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Invalid(
            f"names: unknown metric {unknown[0]!r} for a {job.task} {job.kind} job",
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
        columns = ["epoch", *(n for n in known if n in present and n != "epoch")]
    out = [{c: (r.epoch if c == "epoch" else r.values.get(c)) for c in columns} for r in rows]
    return columns, out


def epoch_resources(
    *, session: Session, job: Job, epoch_from: int | None, epoch_to: int | None
) -> list[dict[str, Any]]:
    """Each epoch's recorded resources (``EpochResources``), for the epochs that have them."""
    query = select(EpochMetric.epoch, EpochMetric.resources).where(
        EpochMetric.job_id == job.id, EpochMetric.resources.is_not(None)
    )
    if epoch_from is not None:
        query = query.where(EpochMetric.epoch >= epoch_from)
    if epoch_to is not None:
        query = query.where(EpochMetric.epoch <= epoch_to)
    rows = session.execute(query.order_by(EpochMetric.epoch)).all()
    return [{**used, "epoch": epoch} for epoch, used in rows if isinstance(used, dict)]
