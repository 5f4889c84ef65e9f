"""HTTP routes for a lab job's charts: ``GET /v1/jobs/{id}/plots/{view}.{png|svg}``.

As in :mod:`service.plots.router`: loading is a dependency's one call through the
database gate, which ends before drawing starts, and drawing runs in a thread of its own
under the same cap on concurrent renders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Response
from sqlalchemy.orm import Session

from service.deps import CurrentUser, DbDep, JobId, authenticated_router
from service.errors import CONFLICT_SCHEMA, NOT_FOUND_SCHEMA, Conflict, Invalid
from service.jobs import service as job_service
from service.jobs.states import JobStatus
from service.plots.lab import (
    render_interpolation,
    render_landscape_contour,
    render_landscape_surface,
    render_range_test,
)
from service.plots.mpl import FORMATS, MEDIA_TYPES, Format
from service.plots.router import DONE_CACHE, LIVE_CACHE, image_response
from service.spec import FieldError
from service.text import safe_filename

router = authenticated_router(prefix="/v1/jobs", tags=["plots"])

#: view → the job kind that has it.
VIEWS: dict[str, str] = {
    "range_test": "lr_range_test",
    "interpolation": "landscape",
    "contour": "landscape",
    "surface": "landscape",
}

ViewPath = Annotated[
    str,
    Path(
        description="`range_test` (an lr_range_test job, or a training job whose rate was "
        '`"auto"`): the loss and smoothed loss against the learning rate, each suggestion '
        "marked. `interpolation` (a landscape): the loss along the line from the initial "
        "to the final weights. `contour` and `surface` (a landscape): the loss on the 2-D "
        "grid around the final weights, with the trajectory when there is one.",
        json_schema_extra={"enum": list(VIEWS)},
    ),
]
FormatPath = Annotated[
    str,
    Path(
        description="`png`, or `svg` (text kept as text).",
        json_schema_extra={"enum": list(FORMATS)},
    ),
]


@dataclass(frozen=True)
class Prepared:
    """What drawing needs, loaded and detached from the session."""

    data: dict[str, Any]
    render: Callable[[dict[str, Any], Format], bytes]
    live: bool
    filename: str


def _choose(name: str, value: str, allowed: list[str] | tuple[str, ...]) -> None:
    if value not in allowed:
        raise Invalid(
            f"{name}: unknown {name} {value[:40]!r}; one of {', '.join(allowed)}",
            fields=[FieldError(name, f"unknown {name} {value[:40]!r}", list(allowed))],
        )


async def lab_plot(
    job_id: JobId, view: ViewPath, fmt: FormatPath, user: CurrentUser, db: DbDep
) -> Prepared:
    """The caller's job ``job_id``'s result, as chart ``view`` draws it."""
    _choose("view", view, list(VIEWS))
    _choose("format", fmt, FORMATS)

    def work(session: Session) -> Prepared:
        job = job_service.get(session=session, job_id=job_id, owner=user.id)
        wanted = VIEWS[view]
        auto = job.kind == "train" and view == "range_test"
        if job.kind != wanted and not auto:
            raise Conflict(
                f"job {job.id} is a {job.kind} job: {view} is drawn for {wanted} jobs"
                + ("; its learning curves are at …/plot.png" if job.kind == "train" else ""),
                code="nothing_to_plot",
            )
        result = job_service.result(session=session, job=job)  # 409 while there is none
        found = result.result.model_dump(mode="json")  # the charts draw the served JSON
        if auto:
            record = found.get("auto_lr") or {}
            found = {**record, "curve": record.get("curve") or {}}
        renders: dict[str, Callable[[dict[str, Any], Format], bytes]] = {
            "range_test": _range_test,
            "interpolation": render_interpolation,
            "contour": render_landscape_contour,
            "surface": render_landscape_surface,
        }
        render = renders[view]
        live = job.status not in JobStatus.TERMINAL
        return Prepared(found, render, live, f"{job.name}-{view}")

    return await db.run(work)


def _range_test(data: dict[str, Any], fmt: Format) -> bytes:
    return render_range_test(data, data.get("curve") or {}, fmt)


PlotDep = Annotated[Prepared, Depends(lab_plot)]


@router.get(
    "/{job_id}/plots/{view}.{fmt}",
    response_class=Response,
    responses={
        200: {
            "content": {MEDIA_TYPES["png"]: {}, MEDIA_TYPES["svg"]: {}},
            "description": "The chart, a PNG or SVG image (as the extension says).",
            "headers": {
                "Cache-Control": {
                    "description": f"`{LIVE_CACHE}` while the job runs, `{DONE_CACHE}` once "
                    "it has ended.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        },
        404: NOT_FOUND_SCHEMA,
        409: CONFLICT_SCHEMA | {"description": "No result yet, or a view of another kind"},
    },
)
async def lab_plot_image(prepared: PlotDep, fmt: FormatPath) -> Response:
    """A lab job's chart as PNG or SVG: `range_test`, `interpolation`, `contour` or
    `surface`. A 409 before the job has a result, or for a view of another kind of job."""
    headers = {
        "Cache-Control": LIVE_CACHE if prepared.live else DONE_CACHE,
        "Content-Disposition": f'inline; filename="{safe_filename(prepared.filename)}.{fmt}"',
    }
    return await image_response(prepared.render, prepared.data, fmt, headers)  # type: ignore[arg-type]
