"""HTTP routes for training jobs."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Annotated, Literal

from fastapi import Body, Depends, Query, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse

from service.deps import (
    MAX_QUERY_INT,
    CurrentUser,
    JobId,
    Limit,
    NotifierDep,
    Offset,
    ProducerDep,
    ResumeAfter,
    SessionDep,
    SettingsDep,
    authenticated_router,
)
from service.errors import (
    CONFLICT_SCHEMA,
    NOT_FOUND_SCHEMA,
    TOO_LARGE_SCHEMA,
    Conflict,
    NotFound,
)
from service.jobs import events, service
from service.jobs.models import JOB_STATUSES, SUCCEEDED, Job
from service.jobs.schemas import (
    EVENT_SCHEMA,
    EXAMPLE_SPEC,
    AttemptRead,
    JobPage,
    JobRead,
    MetricsRead,
    ResultRead,
)
from service.spec import JobSpec
from service.spec.common import TASK_METRICS, metric_names
from service.spec.lab import JOB_KINDS

router = authenticated_router(prefix="/v1/jobs", tags=["jobs"])


def comma_list_pattern(items: Iterable[str]) -> str:
    """The regular expression of what :func:`split_list` accepts: ``items`` separated by
    commas, with spaces around them and empty items allowed."""
    one = "|".join(re.escape(i) for i in items)
    item = rf" *(?:{one})? *"
    return rf"^{item}(?:,{item})*$"


def split_list(value: str | None) -> list[str]:
    """``"running, queued"`` → ``["running", "queued"]``; empty items are dropped."""
    return [part.strip(" ") for part in value.split(",") if part.strip(" ")] if value else []


#: Every metric name some task records (which ones a job has depends on its task).
ALL_METRICS = list(
    dict.fromkeys(
        n for task in TASK_METRICS for kind in JOB_KINDS for n in metric_names(task, kind)
    )
)
SORT_KEYS = [*service.SORTABLE, *(f"-{k}" for k in service.SORTABLE)]


def valid_job(job_id: JobId, session: SessionDep, user: CurrentUser) -> Job:
    """The caller's job ``job_id``; 404 for a missing id and for anyone else's job alike."""
    return service.get(session=session, job_id=job_id, owner=user.id)


JobDep = Annotated[Job, Depends(valid_job)]


def to_read(job: Job, request: Request) -> JobRead:
    base = str(request.url_for("get_job", job_id=job.id))
    return JobRead.model_validate(
        {
            **{c: getattr(job, c) for c in JobRead.model_fields if hasattr(job, c)},
            "epochs": service.total_rows(job.spec),
            "auto_lr": service.auto_lr(job),
            "links": {
                "self": base,
                "metrics": f"{base}/metrics",
                "model": f"{base}/model",
                "cancel": f"{base}/cancel",
                "attempts": f"{base}/attempts",
                "events": f"{base}/events",
                "plot": f"{base}/plot.png",
                "result": f"{base}/result",
            },
        }
    )


@router.post(
    "",
    status_code=202,
    response_model=JobRead,
    responses={
        202: {
            "headers": {
                "Location": {
                    "description": "The job's URL.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            }
        },
        413: TOO_LARGE_SCHEMA,
    },
)
def create_job(
    request: Request,
    response: Response,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    producer: ProducerDep,
    spec: Annotated[
        JobSpec,
        Body(
            openapi_examples={
                "full": {"summary": "Every section", "value": EXAMPLE_SPEC},
                "minimal": {
                    "summary": "Defaults for the rest",
                    "value": {"dataset": {"name": "digits"}},
                },
            }
        ),
    ],
) -> JobRead:
    """Submit a training job; it is queued for a worker and answered with 202."""
    job = service.create(
        session=session, settings=settings, producer=producer, spec=spec, owner=user.id
    )
    out = to_read(job, request)
    response.headers["Location"] = out.links["self"]
    return out


@router.get("", response_model=JobPage)
def list_jobs(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    # The allowed values are documented here and checked by the service, whose 422 names
    # the offending item and lists the allowed ones.
    status: Annotated[
        str | None,
        Query(
            description="Comma-separated statuses, e.g. `running,queued`.",
            json_schema_extra={"pattern": comma_list_pattern(JOB_STATUSES)},
        ),
    ] = None,
    sort: Annotated[
        str,
        Query(
            description="One of created_at, started_at, finished_at, name, status, "
            "epochs_completed; prefix `-` for descending.",
            json_schema_extra={"enum": SORT_KEYS},
        ),
    ] = "-created_at",
    kind: Annotated[
        str | None,
        Query(
            description="Comma-separated kinds: `train`, `lr_range_test`, `landscape`.",
            json_schema_extra={"pattern": comma_list_pattern(JOB_KINDS)},
        ),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> JobPage:
    """List your jobs, newest first, filtered by status and kind."""
    rows, total = service.list_jobs(
        session=session,
        owner=user.id,
        statuses=split_list(status),
        kinds=split_list(kind),
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return JobPage(
        items=[to_read(j, request) for j in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{job_id}", response_model=JobRead, responses={404: NOT_FOUND_SCHEMA})
def get_job(job: JobDep, request: Request) -> JobRead:
    """One job: its status, timestamps, spec and final metrics."""
    return to_read(job, request)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobRead,
    responses={404: NOT_FOUND_SCHEMA, 409: CONFLICT_SCHEMA},
)
def cancel_job(
    job: JobDep, user: CurrentUser, request: Request, session: SessionDep, notifier: NotifierDep
) -> JobRead:
    """Cancel a job: a queued one never starts, a running one stops at the next batch."""
    job = service.cancel(session=session, notifier=notifier, job_id=job.id, owner=user.id)
    return to_read(job, request)


@router.get(
    "/{job_id}/result",
    response_model=ResultRead,
    responses={404: NOT_FOUND_SCHEMA, 409: CONFLICT_SCHEMA},
)
def job_result(job: JobDep, session: SessionDep) -> ResultRead:
    """What a lab job found: a range test's curve and suggestions, a landscape's line and
    grid; for a training job with `"auto"` rates, the range test's choice. 409 while
    there is nothing yet (the job is queued or running, or ended without a result)."""
    return service.result(session=session, job=job)


@router.get(
    "/{job_id}/attempts", response_model=list[AttemptRead], responses={404: NOT_FOUND_SCHEMA}
)
def job_attempts(job: JobDep, session: SessionDep) -> list[AttemptRead]:
    """Each attempt at the job: its worker, the epoch it resumed from, how it ended."""
    return [AttemptRead.model_validate(a) for a in service.attempts(session=session, job=job)]


EVENTS_DOC = """\
`text/event-stream`. `event: epoch` (`id:` the epoch) once per recorded epoch, in
order; `event: status` on connecting and at each change of status or attempt;
`event: end` once the job has ended, after all its epochs, and then the stream closes.
Every event's `id:` is the last epoch sent so far. Each `data:` is one JSON object, e.g.

    id: 3
    event: epoch
    data: {"job_id":"…","epoch":3,"epochs":20,"metrics":{"train_loss":0.41,…},"recorded_at":"…"}

A quiet stream gets a `: keep-alive` comment every 15 s. A stream lasts at most an hour
(`DESCENT_EVENTS_MAX_SECONDS`); reconnect with `Last-Event-ID` and nothing is lost.
"""


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": EVENTS_DOC,
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
        },
        404: NOT_FOUND_SCHEMA,
    },
)
async def job_events(
    job: JobDep, after: ResumeAfter, request: Request, settings: SettingsDep
) -> StreamingResponse:
    """Follow a job live: its epochs and status changes as server-sent events."""
    stream = events.job_events(
        request.app.state.events,
        job_id=job.id,
        epochs=service.total_rows(job.spec),
        after=after,
        heartbeat_seconds=settings.events_heartbeat_seconds,
        max_seconds=settings.events_max_seconds,
    )
    return events.event_stream(stream)


@router.get(
    "/{job_id}/metrics",
    response_model=MetricsRead,
    responses={
        404: NOT_FOUND_SCHEMA,
        200: {"content": {"text/csv": {"example": "epoch,train_loss,val_loss\n1,0.9,0.7\n"}}},
    },
)
def job_metrics(
    job: JobDep,
    session: SessionDep,
    names: Annotated[
        str | None,
        Query(
            description="Comma-separated metric names; default: all. A name the job's task "
            "does not record (`val_r2` of a classification job) is a 422.",
            json_schema_extra={"pattern": comma_list_pattern(ALL_METRICS)},
        ),
    ] = None,
    epoch_from: Annotated[int | None, Query(ge=1, le=MAX_QUERY_INT)] = None,
    epoch_to: Annotated[int | None, Query(ge=1, le=MAX_QUERY_INT)] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> MetricsRead | PlainTextResponse:
    """Per-epoch metrics, as recorded at the end of each epoch (JSON or `?format=csv`)."""
    wanted = split_list(names)
    columns, rows = service.metrics(
        session=session, job=job, names=wanted, epoch_from=epoch_from, epoch_to=epoch_to
    )
    if format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return PlainTextResponse(buf.getvalue(), media_type="text/csv")
    return MetricsRead(job_id=job.id, status=job.status, names=columns, epochs=rows)


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/octet-stream": {}},
            "description": "A PyTorch state dict; load it with "
            "`torch.load(path, weights_only=True)`. For regression jobs trained with "
            '`dataset.target_scaling: "standard"` (the default) it also holds '
            "`target_shift` and `target_scale`: pop them before `load_state_dict`, and "
            "predict with `model(x) * target_scale + target_shift`.",
        },
        404: NOT_FOUND_SCHEMA,
        409: CONFLICT_SCHEMA,
    },
)
def job_model(job: JobDep, settings: SettingsDep) -> FileResponse:
    """Download the trained weights (a state dict) of a succeeded job."""
    if job.status != SUCCEEDED:
        raise Conflict(f"job {job.id} is {job.status}; weights are kept for succeeded jobs")
    path = settings.jobs_dir / job.id / "model.pt"
    if not job.has_model or not path.is_file():
        raise NotFound(f"the weights of job {job.id} are missing from the artifact store")
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{safe_filename(job.name)}-{job.id[:8]}.pt",
    )


def safe_filename(name: str) -> str:
    """``name`` for a Content-Disposition header: only ``[A-Za-z0-9._-]`` (anything else
    becomes ``_``), at most 100 characters, no leading dots."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100].lstrip(".") or "model"
