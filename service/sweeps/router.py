"""HTTP routes for sweeps and comparisons (the event stream and the plots live in
their own modules).

Every route's database work is one call through the gate (service/gate.py); a route
that reads a sweep loads it and its trials with :func:`sweep_and_trials`. The slow parts
(importance: Optuna and a random forest; statistics: SciPy) run after that call has
ended, in a thread of their own, so no database connection is held while they compute.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import Body, Query, Request, Response
from sqlalchemy.orm import Session

from service.deps import (
    CurrentUser,
    DbDep,
    NotifierDep,
    ProducerDep,
    SettingsDep,
    SweepId,
    authenticated_router,
)
from service.errors import CONFLICT_SCHEMA, NOT_FOUND_SCHEMA, TOO_LARGE_SCHEMA
from service.projects.schemas import LabelsUpdate, split_body
from service.query import Limit, Offset, comma_list_pattern, split_list
from service.sweeps import service
from service.sweeps.driver import load_trials, load_trials_of
from service.sweeps.models import Sweep
from service.sweeps.schemas import (
    EXAMPLE_COMPARISON,
    EXAMPLE_GRID,
    EXAMPLE_PRESET,
    EXAMPLE_SWEEP,
    ComparisonCreate,
    ComparisonRead,
    ImportanceRead,
    SweepCreate,
    SweepPage,
    SweepRead,
    TrialPage,
    TrialRead,
)
from service.sweeps.spec import ComparisonSpec, SweepSpec
from service.sweeps.states import SweepKind, SweepStatus, TrialState
from service.sweeps.study import TrialRow

router = authenticated_router(prefix="/v1", tags=["sweeps"])

PLOTS = ("history", "parallel", "intermediate", "importance")


def sweep_and_trials(session: Session, sweep_id: str, owner: str) -> tuple[Sweep, list[TrialRow]]:
    """``owner``'s sweep ``sweep_id`` and its trials, read in one transaction; 404 for a
    missing id and for anyone else's sweep alike."""
    sweep = service.get(session=session, sweep_id=sweep_id, owner=owner)
    return sweep, load_trials(session, sweep.id)


def to_read(sweep: Sweep, trials: list[TrialRow], request: Request) -> SweepRead:
    base = str(request.url_for("get_sweep", sweep_id=sweep.id))
    stored = sweep.spec
    links = {
        "self": base,
        "trials": f"{base}/trials",
        "cancel": f"{base}/cancel",
        "events": f"{base}/events",
    }
    if sweep.kind != SweepKind.COMPARISON:
        links["importance"] = f"{base}/importance"
    plots = list(PLOTS) if sweep.kind != SweepKind.COMPARISON else ["history", "intermediate"]
    if int(stored.get("repeats") or 1) >= 2:
        links["comparison"] = f"{base}/comparison"
        plots.append("comparison")
    for plot in plots:
        links[f"plot_{plot}"] = f"{base}/plots/{plot}.png"
    if sweep.auto_bounds is not None:
        job_id = sweep.auto_bounds.job_id
        links["range_test"] = str(request.url_for("get_job", job_id=job_id))
    summary = service.summary(sweep, trials)
    return SweepRead.model_validate(
        {
            "id": sweep.id,
            "name": sweep.name,
            "kind": sweep.kind,
            "status": sweep.status,
            "status_reason": sweep.status_reason,
            "task": sweep.task,
            "created_at": sweep.created_at,
            "finished_at": sweep.finished_at,
            "cancel_requested": bool(sweep.cancel_requested),
            "spec": stored,
            "max_trials": sweep.max_trials,
            "parallelism": stored.get("parallelism", 1),
            "repeats": stored.get("repeats", 1),
            "trials_created": sweep.trials_created,
            "counts": summary.counts,
            "epochs_spent": summary.epochs_spent,
            "objective": {k: stored["objective"][k] for k in ("metric", "direction", "measure")},
            "best": summary.best,
            "auto_bounds": sweep.auto_bounds,
            "project": sweep.project_name,
            "tags": sweep.tags or {},
            "note": sweep.note,
            "links": links,
        }
    )


def _created(response: Response, out: SweepRead) -> SweepRead:
    response.headers["Location"] = out.links["self"]
    return out


CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "headers": {
            "Location": {
                "description": "The sweep's URL.",
                "required": True,
                "schema": {"type": "string"},
            }
        }
    },
    413: TOO_LARGE_SCHEMA,
}


@router.post("/sweeps", status_code=201, response_model=SweepRead, responses=CREATED)
async def create_sweep(
    request: Request,
    response: Response,
    user: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
    producer: ProducerDep,
    body: Annotated[
        SweepCreate,
        Body(
            openapi_examples={
                "random-asha": {
                    "summary": "Random search with ASHA pruning",
                    "value": EXAMPLE_SWEEP,
                },
                "grid": {"summary": "A grid, 3 seeds per point", "value": EXAMPLE_GRID},
                "preset": {
                    "summary": "TPE over the optimizer family preset",
                    "value": EXAMPLE_PRESET,
                },
            }
        ),
    ],
) -> SweepRead:
    """Start a sweep: trials drawn from `space` over the `base` job spec, each trained as
    a job. Every path and every value the space can take is checked first (a 422 names
    the path); the workers then create and run the trials, `parallelism` at once.

    A range with an `"auto"` end on `optimizer.lr` or `schedule.max_lr` starts a
    learning-rate range test of the base first (`auto_bounds.job_id`); the trials begin
    once it has set the ends, and a failed test fails the sweep.

    Beside the spec the body may hold `project` (the trials join it too), `tags` and
    `note`."""
    spec, labels = split_body(body, SweepSpec)

    def work(session: Session) -> SweepRead:
        sweep = service.create(
            session=session,
            settings=settings,
            spec=spec,
            owner=user.id,
            producer=producer,
            labels=labels,
        )
        return to_read(sweep, [], request)

    return _created(response, await db.run(work))


@router.post("/comparisons", status_code=201, response_model=SweepRead, responses=CREATED)
async def create_comparison(
    request: Request,
    response: Response,
    user: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
    body: Annotated[
        ComparisonCreate,
        Body(
            openapi_examples={
                "optimizers": {
                    "summary": "SGD, SGD with momentum and Adam over 5 seeds",
                    "value": EXAMPLE_COMPARISON,
                }
            }
        ),
    ],
) -> SweepRead:
    """Compare named configurations, each run with the same `repeats` seeds; `GET
    /v1/sweeps/{id}/comparison` then reports means, confidence intervals and paired
    tests. Beside the spec the body may hold `project`, `tags` and `note`."""
    spec, labels = split_body(body, ComparisonSpec)

    def work(session: Session) -> SweepRead:
        sweep = service.create(
            session=session, settings=settings, spec=spec, owner=user.id, labels=labels
        )
        return to_read(sweep, [], request)

    return _created(response, await db.run(work))


@router.get("/sweeps", response_model=SweepPage)
async def list_sweeps(
    request: Request,
    user: CurrentUser,
    db: DbDep,
    status: Annotated[
        str | None,
        Query(
            description="Comma-separated statuses, e.g. `running,succeeded`.",
            json_schema_extra={"pattern": comma_list_pattern(SweepStatus)},
        ),
    ] = None,
    kind: Annotated[
        str | None,
        Query(
            description="Comma-separated kinds: `sweep`, `comparison`.",
            json_schema_extra={"pattern": comma_list_pattern(SweepKind)},
        ),
    ] = None,
    project: Annotated[
        str | None, Query(max_length=100, description="Sweeps in your project of this name.")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> SweepPage:
    """List your sweeps and comparisons, newest first."""

    def work(session: Session) -> SweepPage:
        rows, total = service.list_sweeps(
            session=session,
            owner=user.id,
            statuses=split_list(status),
            kinds=split_list(kind),
            limit=limit,
            offset=offset,
            project=project,
        )
        trials = load_trials_of(session, [s.id for s in rows])
        return SweepPage(
            items=[to_read(s, trials.get(s.id, []), request) for s in rows],
            total=total,
            limit=limit,
            offset=offset,
        )

    return await db.run(work)


@router.get("/sweeps/{sweep_id}", response_model=SweepRead, responses={404: NOT_FOUND_SCHEMA})
async def get_sweep(sweep_id: SweepId, user: CurrentUser, db: DbDep, request: Request) -> SweepRead:
    """One sweep: its status, trials by state, epochs spent and best trial so far."""

    def work(session: Session) -> SweepRead:
        return to_read(*sweep_and_trials(session, sweep_id, user.id), request)

    return await db.run(work)


@router.patch("/sweeps/{sweep_id}", response_model=SweepRead, responses={404: NOT_FOUND_SCHEMA})
async def update_sweep(
    sweep_id: SweepId, update: LabelsUpdate, user: CurrentUser, db: DbDep, request: Request
) -> SweepRead:
    """Change a sweep's `tags` (replace them all), `merge_tags` (set some, null removes),
    `note` or `project` (null: out of any); what is not sent stays. Its trials keep
    their own project."""

    def work(session: Session) -> SweepRead:
        sweep = service.relabel(session=session, sweep_id=sweep_id, owner=user.id, update=update)
        return to_read(sweep, load_trials(session, sweep.id), request)

    return await db.run(work)


@router.get(
    "/sweeps/{sweep_id}/trials", response_model=TrialPage, responses={404: NOT_FOUND_SCHEMA}
)
async def sweep_trials_page(
    sweep_id: SweepId,
    user: CurrentUser,
    db: DbDep,
    state: Annotated[
        str | None,
        Query(
            description="Comma-separated trial states: " + ", ".join(TrialState) + ".",
            json_schema_extra={"pattern": comma_list_pattern(TrialState)},
        ),
    ] = None,
    sort: Annotated[
        str,
        Query(
            description="`best` (default): complete trials best first (by the objective's "
            "direction), then pruned, failed and cancelled ones, unfinished last. `value`, "
            "`number`, `epochs`: by that, `-` for descending (no value sorts last).",
            json_schema_extra={"enum": list(service.TRIAL_SORTS)},
        ),
    ] = "best",
    limit: Limit = 50,
    offset: Offset = 0,
) -> TrialPage:
    """The leaderboard: each trial's state, params, objective, epochs and jobs."""

    def work(session: Session) -> TrialPage:
        sweep, trials = sweep_and_trials(session, sweep_id, user.id)
        rows, total = service.trials_page(
            sweep=sweep,
            trials=trials,
            states=split_list(state),
            sort=sort,
            limit=limit,
            offset=offset,
        )
        items = [TrialRead.model_validate(r) for r in rows]
        return TrialPage(items=items, total=total, limit=limit, offset=offset)

    return await db.run(work)


@router.post(
    "/sweeps/{sweep_id}/cancel",
    response_model=SweepRead,
    responses={404: NOT_FOUND_SCHEMA, 409: CONFLICT_SCHEMA},
)
async def cancel_sweep(
    sweep_id: SweepId,
    user: CurrentUser,
    request: Request,
    db: DbDep,
    notifier: NotifierDep,
) -> SweepRead:
    """Cancel a sweep: no trial starts after this, queued trials are cancelled and running
    ones stop at their next batch. 409 once it has ended."""

    def work(session: Session) -> SweepRead:
        # The driver's transactions take a connection each, one after the other, after
        # this session's read has ended: never two at once in this call.
        sweep = service.cancel(
            session=session,
            sessions=request.app.state.sessionmaker,
            notify=notifier.job_changed,
            sweep_id=sweep_id,
            owner=user.id,
        )
        return to_read(sweep, load_trials(session, sweep.id), request)

    return await db.run(work)


@router.get(
    "/sweeps/{sweep_id}/importance",
    response_model=ImportanceRead,
    responses={404: NOT_FOUND_SCHEMA, 409: CONFLICT_SCHEMA},
)
async def sweep_importance(sweep_id: SweepId, user: CurrentUser, db: DbDep) -> ImportanceRead:
    """How much each parameter matters to the objective (Optuna's fANOVA over the
    complete trials). 409 before 2 trials are complete, and for comparisons."""
    sweep, trials = await db.run(lambda session: sweep_and_trials(session, sweep_id, user.id))
    out = await anyio.to_thread.run_sync(service.cached_importance, sweep, trials)
    return ImportanceRead.model_validate(out)


@router.get(
    "/sweeps/{sweep_id}/comparison",
    response_model=ComparisonRead,
    responses={404: NOT_FOUND_SCHEMA, 409: CONFLICT_SCHEMA},
)
async def sweep_comparison(sweep_id: SweepId, user: CurrentUser, db: DbDep) -> ComparisonRead:
    """Statistics over seeds, for a sweep with `repeats` ≥ 2 (409 otherwise): per
    configuration the mean, standard deviation and 95% confidence interval of the
    objective; the best configuration against each other, paired by seed."""
    sweep, trials = await db.run(lambda session: sweep_and_trials(session, sweep_id, user.id))
    return await anyio.to_thread.run_sync(service.comparison_for, sweep, trials)
