"""HTTP routes for plots: a job's learning curves, and one metric of several jobs.

Loading is a dependency's one call through the database gate (service/gate.py), which
ends before drawing starts, so no database connection is held while matplotlib works.
Drawing runs in a thread of its own, at most ``RENDER_CONCURRENCY`` at once: a burst of
plot requests waits on the event loop for its turn, holding no thread of the pool that
every other route shares.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Query, Response
from sqlalchemy.orm import Session

from service.deps import UUID_PATTERN, CurrentUser, DbDep, JobId, authenticated_router
from service.errors import CONFLICT_SCHEMA, NOT_FOUND_SCHEMA, Conflict, Invalid
from service.gate import LoopLimiter
from service.jobs import service as job_service
from service.plots.curves import (
    ALL_PLOTTABLE,
    LOG_WORDS,
    CompareJob,
    ComparePlot,
    CurvesPlot,
    check_compare_metric,
    choose_log,
    choose_metrics,
    compare_plot,
    curves_plot,
    plottable,
)
from service.plots.labels import spec_labels
from service.plots.mpl import MEDIA_TYPES, Format
from service.plots.render import render_compare, render_curves
from service.query import comma_list_pattern, split_list
from service.spec import FieldError
from service.text import safe_filename

router = authenticated_router(prefix="/v1", tags=["plots"])

#: Renders drawn at once (each is CPU-bound, about 0.1–1 s).
RENDER_CONCURRENCY = 2
#: Most jobs on one comparison chart.
MAX_COMPARE_JOBS = 20
#: A running job's curves change with every epoch; a finished job's never do.
LIVE_CACHE = "no-store"
DONE_CACHE = "private, max-age=300"

_UUID = UUID_PATTERN.removeprefix("^").removesuffix("$")
_limiter = LoopLimiter(RENDER_CONCURRENCY)
P = TypeVar("P")


async def image_response(
    render: Callable[[P, Format], bytes], plot: P, fmt: Format, headers: dict[str, str]
) -> Response:
    """``render(plot, fmt)`` drawn in a thread of its own, at most ``RENDER_CONCURRENCY``
    at once, as the response (every plot route, the sweeps' and the lab's too)."""
    content = await anyio.to_thread.run_sync(render, plot, fmt, limiter=_limiter())
    return Response(content, media_type=MEDIA_TYPES[fmt], headers=headers)


def _responses(fmt: Format, what: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "content": {MEDIA_TYPES[fmt]: {}},
            "description": what,
            "headers": {
                "Cache-Control": {
                    "description": f"`{LIVE_CACHE}` while a job may still record epochs, "
                    f"`{DONE_CACHE}` once all have ended.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        },
        404: NOT_FOUND_SCHEMA,
        409: CONFLICT_SCHEMA,
    }


# -- one job's curves ----------------------------------------------------------------

MetricsQuery = Annotated[
    str | None,
    Query(
        description="Comma-separated metrics to draw; default: `train_loss,val_loss`, the "
        "task's quality (`train_accuracy,val_accuracy`, or `val_r2`) and `lr`. Every "
        "`*_loss` shares a panel, likewise `*_accuracy` and `*_mse`; any other metric has "
        "its own. A metric the job's task does not record is a 422.",
        json_schema_extra={"pattern": comma_list_pattern(ALL_PLOTTABLE)},
    ),
]
LogQuery = Annotated[
    str | None,
    Query(
        description="Comma-separated plotted metrics whose panels get a logarithmic y axis; "
        "`all` (or `true`) for every panel, `false` for none. Default: a panel whose values "
        "are all positive and span a factor of 1000 or more.",
        json_schema_extra={"pattern": comma_list_pattern([*ALL_PLOTTABLE, *LOG_WORDS])},
    ),
]


async def job_curves(
    job_id: JobId,
    user: CurrentUser,
    db: DbDep,
    metrics: MetricsQuery = None,
    log: LogQuery = None,
) -> CurvesPlot:
    """The caller's job ``job_id`` and its epochs, as the panels to draw."""

    def work(session: Session) -> CurvesPlot:
        job = job_service.get(session=session, job_id=job_id, owner=user.id)
        if job.kind != "train":
            view = "range_test" if job.kind == "lr_range_test" else "contour"
            raise Conflict(
                f"job {job.id} is a {job.kind} job, without learning curves: its charts are "
                f"at /v1/jobs/{job.id}/plots/{view}.png",
                code="nothing_to_plot",
            )
        chosen = choose_metrics(job.task, split_list(metrics))
        log_panels = choose_log(split_list(log), chosen)
        _, rows = job_service.metrics(
            session=session, job=job, names=chosen, epoch_from=None, epoch_to=None
        )
        return curves_plot(
            name=job.name,
            job_id=job.id,
            status=job.status,
            planned_epochs=int(job.spec.get("training", {}).get("epochs") or 1),
            best_epoch=job.best_epoch,
            rows=rows,
            metrics=chosen,
            log=log_panels,
        )

    return await db.run(work)


CurvesDep = Annotated[CurvesPlot, Depends(job_curves)]


async def _curves_image(plot: CurvesPlot, fmt: Format) -> Response:
    headers = {
        "Cache-Control": LIVE_CACHE if plot.live else DONE_CACHE,
        "Content-Disposition": f'inline; filename="{safe_filename(plot.filename)}.{fmt}"',
    }
    return await image_response(render_curves, plot, fmt, headers)


@router.get(
    "/jobs/{job_id}/plot.png",
    response_class=Response,
    responses=_responses("png", "The job's learning curves, a PNG image."),
)
async def job_plot_png(plot: CurvesDep) -> Response:
    """A job's learning curves (loss, quality, learning rate per epoch) as a PNG image."""
    return await _curves_image(plot, "png")


@router.get(
    "/jobs/{job_id}/plot.svg",
    response_class=Response,
    responses=_responses("svg", "The job's learning curves, an SVG image (text as text)."),
)
async def job_plot_svg(plot: CurvesDep) -> Response:
    """A job's learning curves as an SVG image: series in `<g id="series-<metric>">`."""
    return await _curves_image(plot, "svg")


# -- several jobs, one metric --------------------------------------------------------

JobsQuery = Annotated[
    str,
    Query(
        description=f"Comma-separated ids of 1 to {MAX_COMPARE_JOBS} of your jobs "
        "(a repeated id counts once).",
        json_schema_extra={
            "pattern": rf"^ *{_UUID} *(?:, *{_UUID} *){{0,{MAX_COMPARE_JOBS - 1}}}$"
        },
    ),
]
MetricQuery = Annotated[
    str,
    Query(
        description="The metric to draw; some of the jobs' tasks must record it.",
        json_schema_extra={"enum": ALL_PLOTTABLE},
    ),
]
CompareLogQuery = Annotated[bool, Query(description="A logarithmic y axis.")]


def parse_job_ids(value: str) -> list[str]:
    """``jobs=``: 1 to ``MAX_COMPARE_JOBS`` job ids, in order, each once; else a 422."""
    items = [part.strip(" ") for part in value.split(",")]

    def invalid(message: str) -> Invalid:
        return Invalid(f"jobs: {message}", fields=[FieldError("jobs", message)])

    if not value.strip(" ") or any(not item for item in items):
        raise invalid("list job ids separated by commas, with no empty item")
    if len(items) > MAX_COMPARE_JOBS:
        raise invalid(f"at most {MAX_COMPARE_JOBS} jobs on one chart, not {len(items)}")
    for item in items:
        if not re.fullmatch(_UUID, item):
            raise invalid(f"{item[:40]!r} is not a job id (a lowercase UUID)")
    return list(dict.fromkeys(items))


async def compared(
    user: CurrentUser,
    db: DbDep,
    jobs: JobsQuery,
    metric: MetricQuery = "val_loss",
    log: CompareLogQuery = False,
) -> ComparePlot:
    """The caller's jobs named by ``jobs``, labelled by what differs between their specs."""
    ids = parse_job_ids(jobs)
    check_compare_metric(metric)

    def work(session: Session) -> ComparePlot:
        # Any id that is not the caller's answers as a missing one, whoever owns it.
        rows = [job_service.get(session=session, job_id=job_id, owner=user.id) for job_id in ids]
        check_compare_metric(metric, [job.task for job in rows])
        series = []
        for job in rows:
            records = metric in plottable(job.task)
            _, epochs = (
                job_service.metrics(
                    session=session, job=job, names=[metric], epoch_from=None, epoch_to=None
                )
                if records
                else ([], [])
            )
            series.append(CompareJob(job.id, job.task, job.status, epochs))
        labels = spec_labels(
            [job.spec for job in rows],
            names=[job.name for job in rows],
            ids=[job.id for job in rows],
        )
        return compare_plot(jobs=series, labels=labels, metric=metric, log=log)

    return await db.run(work)


CompareDep = Annotated[ComparePlot, Depends(compared)]


async def _compare_image(plot: ComparePlot, fmt: Format) -> Response:
    headers = {"Cache-Control": LIVE_CACHE if plot.live else DONE_CACHE}
    return await image_response(render_compare, plot, fmt, headers)


@router.get(
    "/plots/compare.png",
    response_class=Response,
    responses=_responses("png", "The jobs' curves of one metric, a PNG image."),
)
async def compare_png(plot: CompareDep) -> Response:
    """One metric of several of your jobs on one chart, as a PNG image."""
    return await _compare_image(plot, "png")


@router.get(
    "/plots/compare.svg",
    response_class=Response,
    responses=_responses("svg", "The jobs' curves of one metric, an SVG image (text as text)."),
)
async def compare_svg(plot: CompareDep) -> Response:
    """One metric of several of your jobs on one chart, as SVG: `<g id="series-<job id>">`."""
    return await _compare_image(plot, "svg")
