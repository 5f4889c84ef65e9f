"""HTTP routes for training jobs."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse

from service.deps import ProducerDep, SessionDep, SettingsDep
from service.errors import ERROR_SCHEMA, Conflict, NotFound
from service.jobs import service
from service.jobs.models import SUCCEEDED, Job
from service.jobs.schemas import EXAMPLE_SPEC, JobPage, JobRead, MetricsRead
from service.spec import JobSpec

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses={422: ERROR_SCHEMA})


def valid_job(job_id: str, session: SessionDep) -> Job:
    return service.get(session=session, job_id=job_id)


JobDep = Annotated[Job, Depends(valid_job)]


def to_read(job: Job, request: Request) -> JobRead:
    base = str(request.url_for("get_job", job_id=job.id))
    return JobRead.model_validate(
        {
            **{c: getattr(job, c) for c in JobRead.model_fields if hasattr(job, c)},
            "epochs": job.spec["training"]["epochs"],
            "links": {
                "self": base,
                "metrics": f"{base}/metrics",
                "model": f"{base}/model",
                "cancel": f"{base}/cancel",
            },
        }
    )


@router.post("", status_code=202, response_model=JobRead, responses={503: ERROR_SCHEMA})
def create_job(
    request: Request,
    response: Response,
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
    job = service.create(session=session, settings=settings, producer=producer, spec=spec)
    out = to_read(job, request)
    response.headers["Location"] = out.links["self"]
    return out


@router.get("", response_model=JobPage)
def list_jobs(
    request: Request,
    session: SessionDep,
    status: Annotated[
        str | None, Query(description="Comma-separated statuses, e.g. `running,queued`.")
    ] = None,
    sort: Annotated[
        str,
        Query(
            description="One of created_at, started_at, finished_at, name, status, "
            "epochs_completed; prefix `-` for descending."
        ),
    ] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    """List jobs, newest first, filtered by status."""
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else []
    rows, total = service.list_jobs(
        session=session, statuses=statuses, sort=sort, limit=limit, offset=offset
    )
    return JobPage(
        items=[to_read(j, request) for j in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{job_id}", response_model=JobRead, responses={404: ERROR_SCHEMA})
def get_job(job: JobDep, request: Request) -> JobRead:
    """One job: its status, timestamps, spec and final metrics."""
    return to_read(job, request)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobRead,
    responses={404: ERROR_SCHEMA, 409: ERROR_SCHEMA},
)
def cancel_job(job: JobDep, request: Request, session: SessionDep) -> JobRead:
    """Cancel a job: a queued one never starts, a running one stops at the next batch."""
    return to_read(service.cancel(session=session, job_id=job.id), request)


@router.get(
    "/{job_id}/metrics",
    response_model=MetricsRead,
    responses={
        404: ERROR_SCHEMA,
        200: {"content": {"text/csv": {"example": "epoch,train_loss,val_loss\n1,0.9,0.7\n"}}},
    },
)
def job_metrics(
    job: JobDep,
    session: SessionDep,
    names: Annotated[
        str | None, Query(description="Comma-separated metric names; default: all.")
    ] = None,
    epoch_from: Annotated[int | None, Query(ge=1)] = None,
    epoch_to: Annotated[int | None, Query(ge=1)] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> MetricsRead | PlainTextResponse:
    """Per-epoch metrics, as recorded at the end of each epoch (JSON or `?format=csv`)."""
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else []
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
        404: ERROR_SCHEMA,
        409: ERROR_SCHEMA,
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
        path, media_type="application/octet-stream", filename=f"{job.name}-{job.id[:8]}.pt"
    )
