"""HTTP routes for training jobs."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Body, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from service.deps import (
    CurrentUser,
    DbDep,
    JobId,
    NotifierDep,
    ProducerDep,
    ResumeAfter,
    SettingsDep,
    authenticated_router,
)
from service.errors import (
    CONFLICT_SCHEMA,
    NOT_FOUND_SCHEMA,
    TOO_LARGE_SCHEMA,
)
from service.gate import Db
from service.jobs import bundles, events, service
from service.jobs.models import Job
from service.jobs.schemas import (
    EVENT_SCHEMA,
    EXAMPLE_LABELLED,
    EXAMPLE_SPEC,
    MY_EVENTS_SCHEMA,
    AttemptRead,
    JobCreate,
    JobPage,
    JobRead,
    MetricsRead,
    ResultRead,
)
from service.jobs.states import JobKind, JobStatus
from service.openapi import inline_schema
from service.projects.schemas import LabelsUpdate, split_body
from service.query import MAX_QUERY_INT, Limit, Offset, comma_list_pattern, split_list
from service.search.language import MAX_FILTER_LENGTH
from service.spec import JobSpec
from service.spec.bundle import ModelManifest
from service.spec.common import TASK_METRICS, metric_names
from service.streams import follow

router = authenticated_router(prefix="/v1/jobs", tags=["jobs"])


#: Every metric name some task records (which ones a job has depends on its task).
ALL_METRICS = list(
    dict.fromkeys(n for task in TASK_METRICS for kind in JobKind for n in metric_names(task, kind))
)
FILTER_DOC = """\
A filter over your jobs (docs/search.md), e.g.
`optimizer.name = 'adam' and saved.val_accuracy > 0.97 and tags.stage = 'baseline'`.
Fields: `status`, `name`, `kind`, `task`, `project`, `note`, `id`, `epochs_completed`,
`best_value`, `created_at` (and the other columns), spec fields by dotted path
(`optimizer.lr`, `training.batch_size`), `tags.<key>`, and metrics as `final.<metric>`,
`saved.<metric>` or `best.<metric>`. Operators `=`, `!=`, `<`, `<=`, `>`, `>=`, `in (…)`,
`not in (…)`, `contains '…'` (text, ignoring case), `is null`, `is not null`; `and`, `or`,
`not` and parentheses. Values: numbers, 'single' or "double" quoted strings, `true`,
`false`. A comparison with a missing field is unknown (no match, and `not` keeps it so);
values of different types are never equal. A 422 names the column of the problem."""
FILTER_EXAMPLES = {
    "search": {
        "summary": "Adam baselines above 97% validation accuracy",
        "value": "optimizer.name = 'adam' and saved.val_accuracy > 0.97 "
        "and tags.stage = 'baseline'",
    },
    "lr": {"summary": "Fixed rates below 0.01", "value": "optimizer.lr < 0.01"},
    "failed": {
        "summary": "Failed or diverged, not in a sweep",
        "value": "status in ('failed', 'diverged') and sweep_id is null",
    },
}
SORT_DOC = (
    "A field the filter can name, `-` first for descending: the columns created_at, "
    "started_at, finished_at, name, status, epochs_completed and the others, or "
    "`optimizer.lr`, `tags.stage`, `saved.val_accuracy`…; missing values last, ties by id."
)


def to_read(job: Job, request: Request) -> JobRead:
    base = str(request.url_for("get_job", job_id=job.id))
    return JobRead.model_validate(
        {
            **{c: getattr(job, c) for c in JobRead.model_fields if hasattr(job, c)},
            "epochs": service.total_rows(job.spec),
            "auto_lr": service.auto_lr(job),
            "project": job.project_name,
            "tags": job.tags or {},
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
async def create_job(
    request: Request,
    response: Response,
    user: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
    producer: ProducerDep,
    body: Annotated[
        JobCreate,
        Body(
            openapi_examples={
                "full": {"summary": "Every section", "value": EXAMPLE_SPEC},
                "labelled": {
                    "summary": "In a project, with tags and a note",
                    "value": EXAMPLE_LABELLED,
                },
                "minimal": {
                    "summary": "Defaults for the rest",
                    "value": {"dataset": {"name": "digits"}},
                },
            }
        ),
    ],
) -> JobRead:
    """Submit a training job; it is queued for a worker and answered with 202. Beside the
    spec's sections the body may hold `project`, `tags` and `note` (docs/search.md)."""
    spec, labels = split_body(body, JobSpec)

    def work(session: Session) -> JobRead:
        job = service.create(
            session=session,
            settings=settings,
            producer=producer,
            spec=spec,
            owner=user.id,
            labels=labels,
        )
        return to_read(job, request)

    out = await db.run(work)
    response.headers["Location"] = out.links["self"]
    return out


@router.get("", response_model=JobPage)
async def list_jobs(
    request: Request,
    user: CurrentUser,
    db: DbDep,
    # The allowed values are documented here and checked by the service, whose 422 names
    # the offending item and lists the allowed ones.
    status: Annotated[
        str | None,
        Query(
            description="Comma-separated statuses, e.g. `running,queued`.",
            json_schema_extra={"pattern": comma_list_pattern(JobStatus)},
        ),
    ] = None,
    sort: Annotated[str, Query(max_length=200, description=SORT_DOC)] = "-created_at",
    kind: Annotated[
        str | None,
        Query(
            description="Comma-separated kinds: `train`, `lr_range_test`, `landscape`.",
            json_schema_extra={"pattern": comma_list_pattern(JobKind)},
        ),
    ] = None,
    name: Annotated[
        str | None,
        Query(max_length=200, description="Jobs whose name contains this, ignoring case."),
    ] = None,
    # -- organising and search (docs/search.md) ------------------------------------------
    project: Annotated[
        str | None, Query(max_length=100, description="Jobs in your project of this name.")
    ] = None,
    filter: Annotated[
        str | None,
        Query(
            max_length=MAX_FILTER_LENGTH,
            description=FILTER_DOC,
            openapi_examples=FILTER_EXAMPLES,
        ),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> JobPage:
    """List your jobs, newest first, filtered by status, kind, name, project, and any
    filter of the search language (`filter`); `sort` by any field it names."""

    def work(session: Session) -> JobPage:
        rows, total = service.list_jobs(
            session=session,
            owner=user.id,
            statuses=split_list(status),
            kinds=split_list(kind),
            name=name,
            project=project,
            filter=filter,
            sort=sort,
            limit=limit,
            offset=offset,
        )
        items = [to_read(j, request) for j in rows]
        return JobPage(items=items, total=total, limit=limit, offset=offset)

    return await db.run(work)


MY_EVENTS_DOC = """\
`text/event-stream` of your jobs as they change, for a page that lists them: `event: job`,
whose `data:` is the job as `GET /v1/jobs/{id}` shows it, for each queued or running job
(and each that ended in the last 5 minutes) when the stream opens, then whenever one of
your jobs is created, starts, records an epoch, resumes, is asked to stop or ends. It
never ends by itself; a quiet stream gets a `: keep-alive` comment every 15 s, and it is
closed after `DESCENT_EVENTS_MAX_SECONDS` (reconnect; the open jobs are sent again).
"""


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": MY_EVENTS_DOC,
            "content": {"text/event-stream": {"schema": MY_EVENTS_SCHEMA}},
        }
    },
)
async def my_job_events(
    user: CurrentUser, request: Request, settings: SettingsDep
) -> StreamingResponse:
    """Follow all your jobs live: one stream for a whole list (not one per row)."""

    def present(job: Job) -> dict[str, object]:
        return to_read(job, request).model_dump(mode="json")

    feed = events.OwnerFeed(user.id, present=present)
    return follow(request.app.state.events, feed, after=0, settings=settings)


@router.get("/{job_id}", response_model=JobRead, responses={404: NOT_FOUND_SCHEMA})
async def get_job(job_id: JobId, user: CurrentUser, db: DbDep, request: Request) -> JobRead:
    """One job: its status, timestamps, spec and final metrics."""

    def work(session: Session) -> JobRead:
        return to_read(service.get(session=session, job_id=job_id, owner=user.id), request)

    return await db.run(work)


@router.patch("/{job_id:not_events}", response_model=JobRead, responses={404: NOT_FOUND_SCHEMA})
async def update_job(
    job_id: JobId, update: LabelsUpdate, user: CurrentUser, db: DbDep, request: Request
) -> JobRead:
    """Change a job's `tags` (replace them all), `merge_tags` (set some, null removes),
    `note` or `project` (null: out of any); what is not sent stays."""

    def work(session: Session) -> JobRead:
        job = service.relabel(session=session, job_id=job_id, owner=user.id, update=update)
        return to_read(job, request)

    return await db.run(work)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobRead,
    responses={404: NOT_FOUND_SCHEMA, 409: CONFLICT_SCHEMA},
)
async def cancel_job(
    job_id: JobId, user: CurrentUser, request: Request, db: DbDep, notifier: NotifierDep
) -> JobRead:
    """Cancel a job: a queued one never starts, a running one stops at the next batch."""

    def work(session: Session) -> JobRead:
        job = service.cancel(session=session, notifier=notifier, job_id=job_id, owner=user.id)
        return to_read(job, request)

    return await db.run(work)


@router.get(
    "/{job_id}/result",
    response_model=ResultRead,
    responses={404: NOT_FOUND_SCHEMA, 409: CONFLICT_SCHEMA},
)
async def job_result(job_id: JobId, user: CurrentUser, db: DbDep) -> ResultRead:
    """What a lab job found: a range test's curve and suggestions, a landscape's line and
    grid; for a training job with `"auto"` rates, the range test's choice. 409 while
    there is nothing yet (the job is queued or running, or ended without a result)."""

    def work(session: Session) -> ResultRead:
        job = service.get(session=session, job_id=job_id, owner=user.id)
        return service.result(session=session, job=job)

    return await db.run(work)


@router.get(
    "/{job_id}/attempts", response_model=list[AttemptRead], responses={404: NOT_FOUND_SCHEMA}
)
async def job_attempts(job_id: JobId, user: CurrentUser, db: DbDep) -> list[AttemptRead]:
    """Each attempt at the job: its worker, the epoch it resumed from, how it ended."""

    def work(session: Session) -> list[AttemptRead]:
        job = service.get(session=session, job_id=job_id, owner=user.id)
        return [AttemptRead.model_validate(a) for a in service.attempts(session=session, job=job)]

    return await db.run(work)


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
    job_id: JobId,
    user: CurrentUser,
    db: DbDep,
    after: ResumeAfter,
    request: Request,
    settings: SettingsDep,
) -> StreamingResponse:
    """Follow a job live: its epochs and status changes as server-sent events."""

    def work(session: Session) -> int:
        return service.total_rows(service.get(session=session, job_id=job_id, owner=user.id).spec)

    epochs = await db.run(work)  # the stream's own reads take turns of their own
    feed = events.JobFeed(job_id, epochs=epochs)
    return follow(request.app.state.events, feed, after=after, settings=settings)


MetricNames = Annotated[
    str | None,
    Query(
        description="Comma-separated metric names; default: all. A name the job's task "
        "does not record (`val_r2` of a classification job) is a 422.",
        json_schema_extra={"pattern": comma_list_pattern(ALL_METRICS)},
    ),
]
EpochBound = Annotated[int | None, Query(ge=1, le=MAX_QUERY_INT)]
#: The CSV answer's schema: a header row of metric names, then a row per epoch.
METRICS_CSV = {
    "schema": {"type": "string"},
    "example": "epoch,train_loss,val_loss\n1,0.9,0.7\n",
}


@router.get(
    "/{job_id}/metrics",
    response_model=MetricsRead,
    responses={404: NOT_FOUND_SCHEMA, 200: {"content": {"text/csv": METRICS_CSV}}},
)
async def job_metrics(
    job_id: JobId,
    user: CurrentUser,
    db: DbDep,
    names: MetricNames = None,
    epoch_from: EpochBound = None,
    epoch_to: EpochBound = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> MetricsRead | PlainTextResponse:
    """Per-epoch metrics, as recorded at the end of each epoch (JSON or `?format=csv`);
    the JSON also has each epoch's resources (device, peak memory)."""
    csv_wanted = format == "csv"
    read = await _metrics(db, job_id, user.id, names, epoch_from, epoch_to, not csv_wanted)
    return _csv(read) if csv_wanted else read


@router.get(
    "/{job_id}/metrics.csv",
    # Not PlainTextResponse: its text/plain would hold the error schemas in the document.
    response_class=Response,
    responses={
        200: {"content": {"text/csv": METRICS_CSV}, "description": "A row per epoch."},
        404: NOT_FOUND_SCHEMA,
    },
)
async def job_metrics_csv(
    job_id: JobId,
    user: CurrentUser,
    db: DbDep,
    names: MetricNames = None,
    epoch_from: EpochBound = None,
    epoch_to: EpochBound = None,
) -> PlainTextResponse:
    """Per-epoch metrics as CSV: `…/metrics?format=csv` at a path of its own, for clients
    (generated ones above all) that expect one media type per operation."""
    return _csv(await _metrics(db, job_id, user.id, names, epoch_from, epoch_to, False))


async def _metrics(
    db: Db,
    job_id: str,
    owner: str,
    names: str | None,
    epoch_from: int | None,
    epoch_to: int | None,
    with_resources: bool,
) -> MetricsRead:
    def work(session: Session) -> MetricsRead:
        job = service.get(session=session, job_id=job_id, owner=owner)
        columns, rows = service.metrics(
            session=session,
            job=job,
            names=split_list(names),
            epoch_from=epoch_from,
            epoch_to=epoch_to,
        )
        used = (
            service.epoch_resources(
                session=session, job=job, epoch_from=epoch_from, epoch_to=epoch_to
            )
            if with_resources
            else []
        )
        return MetricsRead(
            job_id=job.id, status=job.status, names=columns, epochs=rows, resources=used
        )

    return await db.run(work)


def _csv(read: MetricsRead) -> PlainTextResponse:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=read.names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(read.epochs)
    return PlainTextResponse(buf.getvalue(), media_type="text/csv")


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": inline_schema(ModelManifest)},
            },
            "description": "`application/octet-stream` for `state_dict` and `onnx`, "
            "`application/zip` for `bundle`, `application/json` for `manifest`. "
            + bundles.FORMATS_DOC,
        },
        404: NOT_FOUND_SCHEMA,
        409: CONFLICT_SCHEMA,
    },
)
async def job_model(
    job_id: JobId,
    user: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
    format: Annotated[
        bundles.ModelFormat,
        Query(
            description="`state_dict` (model.pt), `onnx` (model.onnx), `bundle` (a zip) or "
            "`manifest` (model.json)."
        ),
    ] = "state_dict",
) -> FileResponse:
    """Download a succeeded job's trained model: its weights, ONNX export or bundle."""

    def work(session: Session) -> tuple[Path, str]:
        job = service.get(session=session, job_id=job_id, owner=user.id)
        return bundles.locate(job, settings.jobs_dir, format)

    # The file is sent (and a zip built) after the call: no connection is held meanwhile.
    folder, base = await db.run(work)
    found = await run_in_threadpool(bundles.model_file, folder, base, format)
    cleanup = BackgroundTask(found.path.unlink, missing_ok=True) if found.temporary else None
    return FileResponse(
        found.path, media_type=found.media_type, filename=found.filename, background=cleanup
    )
