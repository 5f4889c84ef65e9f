"""HTTP routes for a sweep's plots: ``GET /v1/sweeps/{id}/plots/{kind}.{png|svg}``.

As in :mod:`service.plots.router`: loading is a dependency's one call through the
database gate, which ends before drawing starts, and drawing runs in a thread of its own
under the same cap on concurrent renders. The
importance plot's fANOVA (Optuna and scikit-learn, imported then) is computed in that
render thread too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.deps import CurrentUser, DbDep, SweepId, authenticated_router
from service.errors import CONFLICT_SCHEMA, NOT_FOUND_SCHEMA, Conflict, Invalid
from service.jobs.models import EpochMetric, Job
from service.plots.curves import ALL_PLOTTABLE, plottable
from service.plots.mpl import FORMATS, MEDIA_TYPES, Format
from service.plots.router import DONE_CACHE, LIVE_CACHE, image_response
from service.plots.sweeps import (
    BANDS,
    KINDS,
    MAX_BANDS,
    ConfigRuns,
    SweepInfo,
    TrialInfo,
    comparison_plot,
    history_plot,
    importance_plot,
    intermediate_plot,
    parallel_plot,
    render_comparison,
    render_history,
    render_importance,
    render_intermediate,
    render_parallel,
    trial_info,
)
from service.spec import FieldError
from service.sweeps import service as sweep_service
from service.sweeps.driver import load_trials, resolved_space
from service.sweeps.models import Sweep
from service.sweeps.states import SweepKind, SweepStatus
from service.sweeps.study import TrialRow
from service.text import safe_filename

router = authenticated_router(prefix="/v1/sweeps", tags=["sweeps"])

KindPath = Annotated[
    str,
    Path(
        description="`history`: the objective of each trial, with the best so far. "
        "`parallel`: parallel coordinates, one axis per parameter and one for the objective. "
        "`intermediate`: every trial's objective per epoch (or percent of its run), pruned "
        "trials ending in ×. `importance`: fANOVA importance of each parameter (2 complete "
        "trials at least). `comparison`: per configuration, the mean curve of `metric` over "
        "its seeds with a band (repeats ≥ 2).",
        json_schema_extra={"enum": list(KINDS)},
    ),
]
FormatPath = Annotated[
    str,
    Path(
        description='`png`, or `svg` (text kept as text; series in `<g id="series-…">`).',
        json_schema_extra={"enum": list(FORMATS)},
    ),
]
MetricQuery = Annotated[
    str | None,
    Query(
        description="comparison: the metric to draw; default: the sweep's objective metric. "
        "Ignored by the other plots, which draw the objective.",
        json_schema_extra={"enum": ALL_PLOTTABLE},
    ),
]
BandQuery = Annotated[
    str,
    Query(
        description="comparison: `ci95`, the 95% confidence interval of the mean over the "
        "seeds (Student's t), or `std`, the mean ± one standard deviation.",
        json_schema_extra={"enum": list(BANDS)},
    ),
]


def _choose(name: str, value: str, allowed: tuple[str, ...] | list[str], what: str) -> None:
    if value not in allowed:
        raise Invalid(
            f"{name}: unknown {what} {value[:40]!r}; one of {', '.join(allowed)}",
            fields=[FieldError(name, f"unknown {what} {value[:40]!r}", list(allowed))],
        )


@dataclass(frozen=True)
class Prepared:
    """What drawing needs, loaded and detached from the session."""

    plot: Any
    render: Callable[[Any, Format], bytes]
    live: bool
    filename: str


def _info(sweep: Sweep) -> SweepInfo:
    spec = sweep.spec or {}
    objective = spec.get("objective") or {}
    metric = str(objective.get("metric") or "val_loss")
    direction = objective.get("direction") or (
        "max" if metric.endswith(("accuracy", "_r2")) else "min"
    )
    return SweepInfo(
        id=sweep.id,
        name=sweep.name,
        kind=sweep.kind,
        status=sweep.status,
        metric=metric,
        direction="max" if direction == "max" else "min",
        step_measure=str((spec.get("pruner") or {}).get("measure") or "epoch"),
        space=resolved_space(sweep),  # the ranges the trials sampled
        repeats=int(spec.get("repeats") or 1),
        live=sweep.status == SweepStatus.RUNNING,
    )


def _label(sweep: Sweep, trial: TrialRow) -> str | None:
    if sweep.kind == SweepKind.COMPARISON:
        label = (trial.optuna or {}).get("label")
        return str(label) if label else None
    return None


def _runs(session: Session, sweep_id: str, numbers: list[int], metric: str) -> dict[int, Any]:
    """Trial number → its jobs' (epoch, value) lists of ``metric``, one per job."""
    rows = session.execute(
        select(Job.id, Job.trial_number, EpochMetric.epoch, EpochMetric.values)
        .join(EpochMetric, EpochMetric.job_id == Job.id)
        .where(Job.sweep_id == sweep_id, Job.trial_number.in_(numbers))
        .order_by(Job.trial_number, Job.id, EpochMetric.epoch)
    ).all()
    runs: dict[int, dict[str, list[tuple[int, Any]]]] = {}
    for job_id, number, epoch, values in rows:
        if number is None:  # the sweep's range test: no trial
            continue
        value = values.get(metric) if isinstance(values, dict) else None
        runs.setdefault(number, {}).setdefault(job_id, []).append((epoch, value))
    return {n: list(by_job.values()) for n, by_job in runs.items()}


def _comparison(
    session: Session,
    sweep: Sweep,
    info: SweepInfo,
    trials: list[TrialRow],
    infos: list[TrialInfo],
    metric: str,
    band: str,
) -> Any:
    if info.repeats < 2:
        raise Conflict(
            f"sweep {sweep.id} runs each configuration once (repeats 1): a comparison plot "
            "needs repeats of 2 or more; see its history or intermediate plots",
            code="nothing_to_plot",
        )
    chosen = infos
    if len(infos) > MAX_BANDS:
        # The best configurations: complete ones by value, then the rest by number.
        sign = 1 if info.direction == "min" else -1

        def rank(t: TrialInfo) -> tuple[int, float, int]:
            done = t.state == "complete" and t.value is not None
            return (0 if done else 1, sign * t.value if done else math.inf, t.number)  # type: ignore[operator]

        chosen = sorted(infos, key=rank)[:MAX_BANDS]
        chosen.sort(key=lambda t: t.number)
    runs = _runs(session, sweep.id, [t.number for t in chosen], metric)
    labels = {t.number: _label(sweep, t) for t in trials}
    configs = [
        ConfigRuns(t.number, labels.get(t.number) or t.label, runs[t.number])
        for t in chosen
        if t.number in runs
    ]
    return comparison_plot(info, configs, metric, band, total=len(trials))


async def sweep_plot(
    sweep_id: SweepId,
    kind: KindPath,
    fmt: FormatPath,
    user: CurrentUser,
    db: DbDep,
    metric: MetricQuery = None,
    band: BandQuery = "ci95",
) -> Prepared:
    """The caller's sweep ``sweep_id``, loaded and turned into what plot ``kind`` shows."""
    _choose("kind", kind, KINDS, "plot")
    _choose("format", fmt, FORMATS, "format")
    _choose("band", band, BANDS, "band")
    if metric is not None:
        _choose("metric", metric, ALL_PLOTTABLE, "metric")

    def work(session: Session) -> Prepared:
        sweep = sweep_service.get(session=session, sweep_id=sweep_id, owner=user.id)
        info = _info(sweep)
        if metric is not None and metric not in plottable(sweep.task):
            raise Invalid(
                f"metric: a {sweep.task} sweep records no metric {metric!r}",
                fields=[FieldError("metric", f"unknown metric {metric!r}", plottable(sweep.task))],
            )
        trials = load_trials(session, sweep.id)
        infos = [trial_info(t, _label(sweep, t)) for t in trials]
        render: Callable[[Any, Format], bytes]
        if kind == "history":
            plot: Any = history_plot(info, infos)
            render = render_history
        elif kind == "parallel":
            plot, render = parallel_plot(info, infos), render_parallel
        elif kind == "intermediate":
            plot, render = intermediate_plot(info, infos), render_intermediate
        elif kind == "comparison":
            plot = _comparison(session, sweep, info, trials, infos, metric or info.metric, band)
            render = render_comparison
        else:
            # Checks that need no Optuna (a comparison, < 2 complete trials) answer 409
            # here; the fANOVA itself runs with the drawing, off the request's call.
            plot = _ImportanceInput(sweep, trials, info)
            _importance_precheck(sweep, trials)
            render = _render_importance
        return Prepared(plot, render, info.live, plot_filename(info, kind))

    return await db.run(work)


def plot_filename(info: SweepInfo, kind: str) -> str:
    return f"{info.filename}-{kind}"


@dataclass(frozen=True)
class _ImportanceInput:
    sweep: Sweep
    trials: list[TrialRow]
    info: SweepInfo


def _importance_precheck(sweep: Sweep, trials: list[TrialRow]) -> None:
    if sweep.kind == SweepKind.COMPARISON:
        raise Conflict(
            f"sweep {sweep.id} is a comparison: its configurations are not drawn from a "
            "space, so its parameters have no importance; see its comparison plot",
            code="nothing_to_plot",
        )
    complete = sum(t.outcome()[0] == "complete" for t in trials)
    if complete < 2:
        raise Conflict(
            f"nothing to plot yet: importance needs at least 2 complete trials; sweep "
            f"{sweep.id} has {complete}",
            code="nothing_to_plot",
        )


def _render_importance(data: _ImportanceInput, fmt: Format) -> bytes:
    result = sweep_service.cached_importance(data.sweep, data.trials)
    values = {p["name"]: p["importance"] for p in result["params"]}
    plot = importance_plot(data.info, values, int(result["trials_used"]))
    return render_importance(plot, fmt)


PlotDep = Annotated[Prepared, Depends(sweep_plot)]


@router.get(
    "/{sweep_id}/plots/{kind}.{fmt}",
    response_class=Response,
    responses={
        200: {
            "content": {MEDIA_TYPES["png"]: {}, MEDIA_TYPES["svg"]: {}},
            "description": "The plot, a PNG or SVG image (as the extension says).",
            "headers": {
                "Cache-Control": {
                    "description": f"`{LIVE_CACHE}` while the sweep runs, `{DONE_CACHE}` "
                    "once it has ended.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        },
        404: NOT_FOUND_SCHEMA,
        409: CONFLICT_SCHEMA | {"description": "Nothing to plot yet (or ever, for this kind)"},
    },
)
async def sweep_plot_image(prepared: PlotDep, fmt: FormatPath) -> Response:
    """One of a sweep's plots as PNG or SVG: `history`, `parallel`, `intermediate`,
    `importance` or `comparison` (`metric=`, `band=`). A 409 while there is nothing to
    draw yet (no trial with a value; fewer than 2 complete trials for importance; a
    comparison plot of a sweep without repeats)."""
    headers = {
        "Cache-Control": LIVE_CACHE if prepared.live else DONE_CACHE,
        "Content-Disposition": f'inline; filename="{safe_filename(prepared.filename)}.{fmt}"',
    }
    return await image_response(prepared.render, prepared.plot, fmt, headers)  # type: ignore[arg-type]
