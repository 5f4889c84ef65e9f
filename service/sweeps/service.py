"""What the sweeps API does, without HTTP: create, list, read, cancel, the leaderboard,
the summary, parameter importance and the statistics of a comparison.

Reading and computing are apart: the ``load_*`` functions read rows into plain objects
(:class:`~service.sweeps.study.TrialRow`), and everything after that — summaries, the
leaderboard, importance (Optuna), statistics (SciPy) — works on those objects with no
session, so a caller can end its transaction before the slow part starts.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.errors import Conflict, Invalid
from service.jobs.models import Job
from service.jobs.service import dataset_shape, new_job
from service.jobs.states import JobStatus
from service.owned import get_owned
from service.projects import service as projects
from service.projects.schemas import LabelsUpdate, Organised
from service.spec import FieldError, JobSpec
from service.stats import spread
from service.sweeps import driver
from service.sweeps.models import Sweep
from service.sweeps.schemas import AutoBounds, ComparisonRead, ConfigurationStats, PairedTest
from service.sweeps.spec import ComparisonSpec, SweepSpec
from service.sweeps.states import SweepKind, SweepStatus, TrialState
from service.sweeps.study import TrialRow
from service.sweeps.validate import check_comparison, check_sweep, label_of, range_test_body

if TYPE_CHECKING:
    from service.queue import Producer

#: ``GET …/trials?sort=``: ``best`` (the default) ranks complete trials best first, then
#: pruned, failed and cancelled ones, unfinished last.
TRIAL_SORTS: tuple[str, ...] = (
    "best",
    "value",
    "-value",
    "number",
    "-number",
    "epochs",
    "-epochs",
)
NAME_LENGTH = 200
log = logging.getLogger(__name__)


# -- create ---------------------------------------------------------------------------


def default_name(stored: dict[str, Any], spec: SweepSpec | ComparisonSpec) -> str:
    if isinstance(spec, ComparisonSpec):
        name = "compare " + " vs ".join(c["label"] for c in stored["configurations"])
    else:
        name = f"{stored['sampler']['name']} over {', '.join(spec.space)}"
    return name[:NAME_LENGTH]


def create(
    *,
    session: Session,
    settings: Settings,
    spec: SweepSpec | ComparisonSpec,
    owner: str,
    producer: Producer | None = None,
    labels: Organised | None = None,
) -> Sweep:
    """Check ``spec`` (every path, every value, the objective) and store the sweep; the
    workers' drivers create its trials. Raises SpecError naming each problem.

    A sweep with "auto" ends gets its range-test job in the same transaction (a job of
    the sweep with no trial number), sent through ``producer`` once committed; if the
    broker refuses, the reaper sends it later (``DESCENT_REDISPATCH_SECONDS``).
    """
    if isinstance(spec, ComparisonSpec):
        stored, task = check_comparison(spec, session=session, settings=settings, owner=owner)
        kind = SweepKind.COMPARISON
    else:
        stored, task = check_sweep(spec, session=session, settings=settings, owner=owner)
        kind = SweepKind.SEARCH
    name = spec.name or default_name(stored, spec)
    sweep_id = str(uuid.uuid4())
    test: Job | None = None
    auto: AutoBounds | None = None
    if isinstance(spec, SweepSpec) and spec.auto_paths():
        body = range_test_body(stored["base"], spec.range_test)
        body["name"] = f"{name[:170]} · range test"
        job_spec = JobSpec.model_validate(body)
        shape = dataset_shape(session=session, spec=job_spec, owner=owner)
        test = new_job(job_spec, shape, owner, sweep_id=sweep_id, queue=settings.queue)
        # Its ends come when the test has ended (driver.resolve_auto).
        auto = AutoBounds(job_id=test.id, paths=spec.auto_paths())
    sweep = Sweep(
        id=sweep_id,
        owner_id=owner,
        name=name,
        kind=kind,
        status=SweepStatus.RUNNING,
        spec=stored,
        task=task,
        max_trials=max_trials_of(kind, stored),
        # Its trials go to this API's queue, whichever worker's driver creates them.
        queue=settings.queue,
        auto_bounds=auto,
        trials_created=0,
        event_seq=0,
        cancel_requested=False,
    )
    if labels is not None:
        projects.organise(session=session, owner=owner, row=sweep, labels=labels)
    session.add(sweep)
    session.flush()  # the sweep before the job that refers to it
    if test is not None:
        test.project_id = sweep.project_id
        session.add(test)
    session.commit()
    if test is not None and producer is not None:
        try:
            producer.enqueue_training(test.id, test.dispatch, test.queue)
        except Exception as exc:
            log.warning("sweep %s: could not send its range test %s: %s", sweep_id, test.id, exc)
    return sweep


def max_trials_of(kind: str, stored: dict[str, Any]) -> int:
    """The trials a checked spec makes: a search's ``max_trials`` (``check_sweep``
    resolved its default), a comparison's configurations."""
    return (
        len(stored["configurations"]) if kind == SweepKind.COMPARISON else int(stored["max_trials"])
    )


# -- read -----------------------------------------------------------------------------


def get(*, session: Session, sweep_id: str, owner: str) -> Sweep:
    """``owner``'s sweep; anyone else's answers exactly as one that does not exist."""
    return get_owned(session, Sweep, sweep_id, owner=owner, what="sweep")


def _check_values(name: str, given: Sequence[str], choices: type[StrEnum], what: str) -> None:
    allowed = [c.value for c in choices]
    bad = [v for v in given if v not in allowed]
    if bad:
        raise Invalid(
            f"{name}: unknown {what} {bad[0]!r}",
            fields=[FieldError(name, f"unknown {what} {bad[0]!r}", allowed)],
        )


def list_sweeps(
    *,
    session: Session,
    owner: str,
    statuses: Sequence[str],
    kinds: Sequence[str],
    limit: int,
    offset: int,
    project: str | None = None,
) -> tuple[list[Sweep], int]:
    """``owner``'s sweeps, newest first: filters and total see no one else's. ``project``
    is a project's name."""
    _check_values("status", statuses, SweepStatus, "status")
    _check_values("kind", kinds, SweepKind, "kind")
    query = select(Sweep).where(Sweep.owner_id == owner)
    if statuses:
        query = query.where(Sweep.status.in_(statuses))
    if kinds:
        query = query.where(Sweep.kind.in_(kinds))
    if project is not None:
        found = projects.find(session=session, owner=owner, name=project)
        if found is None:
            return [], 0
        query = query.where(Sweep.project_id == found.id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Sweep.created_at.desc(), Sweep.id).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def relabel(*, session: Session, sweep_id: str, owner: str, update: LabelsUpdate) -> Sweep:
    """``PATCH /v1/sweeps/{id}``: change a sweep's tags, note or project. Its trials stay
    where they are (move them with ``PATCH /v1/jobs/{id}``)."""
    sweep = get(session=session, sweep_id=sweep_id, owner=owner)
    projects.relabel(session=session, owner=owner, row=sweep, update=update)
    session.commit()
    session.refresh(sweep)
    return sweep


# -- trial states and values ------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def trial_value(trial: TrialRow, state: TrialState | None = None) -> float | None:
    """complete: the mean objective of its seeds; running or pruned: its single job's
    objective so far; else None."""
    state = state or trial.state
    if state == TrialState.COMPLETE:
        return _finite(trial.outcome()[1])
    if state in (TrialState.RUNNING, TrialState.PRUNED) and len(trial.jobs) == 1:
        return _finite(trial.jobs[0].objective)
    return None


def trial_label(trial: TrialRow) -> str:
    return str((trial.optuna or {}).get("label") or label_of(trial.params))


def seed_of(stored: dict[str, Any], trial: TrialRow, repeat: int) -> int | None:
    if "training.seed" in trial.params and isinstance(trial.params["training.seed"], int):
        return trial.params["training.seed"]
    seeds = stored.get("seeds") or []
    return seeds[repeat] if 0 <= repeat < len(seeds) else None


@dataclass
class Summary:
    counts: dict[TrialState, int]
    epochs_spent: int
    best: dict[str, Any] | None


def _better(direction: str) -> Callable[[float], float]:
    """A sort key putting the best value first."""
    return (lambda v: -v) if direction == "max" else (lambda v: v)


def summary(sweep: Sweep, trials: Sequence[TrialRow]) -> Summary:
    counts = dict.fromkeys(TrialState, 0)
    best: tuple[float, TrialRow] | None = None
    key = _better(sweep.spec["objective"]["direction"])
    for t in trials:
        state = t.state
        counts[state] += 1
        value = trial_value(t, state) if state == TrialState.COMPLETE else None
        if value is not None and (best is None or key(value) < key(best[0])):
            best = (value, t)
    best_out = None
    if best is not None:
        value, t = best
        best_out = {
            "number": t.number,
            "label": trial_label(t) if sweep.kind == SweepKind.COMPARISON else None,
            "params": t.params,
            "value": value,
            "job_ids": [j.id for j in t.jobs],
        }
    epochs = sum(j.epochs_completed for t in trials for j in t.jobs)
    return Summary(counts, epochs, best_out)


# -- the leaderboard --------------------------------------------------------------------


def trials_page(
    *,
    sweep: Sweep,
    trials: Sequence[TrialRow],
    states: Sequence[str],
    sort: str,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """The trials as the leaderboard shows them: filtered by state, sorted, one page."""
    _check_values("state", states, TrialState, "state")
    if sort not in TRIAL_SORTS:
        raise Invalid(
            f"sort: cannot sort by {sort!r}",
            fields=[FieldError("sort", f"cannot sort by {sort!r}", list(TRIAL_SORTS))],
        )
    rows = [trial_read(sweep, t) for t in trials]
    if states:
        rows = [r for r in rows if r["state"] in states]
    key = _better(sweep.spec["objective"]["direction"])
    rank = {
        TrialState.COMPLETE: 0,
        TrialState.PRUNED: 1,
        TrialState.FAILED: 2,
        TrialState.CANCELLED: 2,
        TrialState.RUNNING: 3,
        TrialState.QUEUED: 3,
    }

    def by_value(sign: float) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        return lambda r: (r["value"] is None, sign * (r["value"] or 0.0), r["number"])

    if sort == "best":
        rows.sort(
            key=lambda r: (
                rank[r["state"]],
                r["value"] is None,
                key(r["value"]) if r["value"] is not None else 0.0,
                r["number"],
            )
        )
    elif sort in ("value", "-value"):
        rows.sort(key=by_value(-1.0 if sort.startswith("-") else 1.0))
    elif sort in ("number", "-number"):
        rows.sort(key=lambda r: r["number"], reverse=sort.startswith("-"))
    else:
        sign = -1 if sort.startswith("-") else 1
        rows.sort(key=lambda r: (sign * r["epochs"], r["number"]))
    return rows[offset : offset + limit], len(rows)


def trial_read(sweep: Sweep, t: TrialRow) -> dict[str, Any]:
    state = t.state
    return {
        "number": t.number,
        "state": state,
        "label": trial_label(t) if sweep.kind == SweepKind.COMPARISON else None,
        "params": t.params,
        "value": trial_value(t, state),
        "epochs": sum(j.epochs_completed for j in t.jobs),
        "jobs": [
            {
                "id": j.id,
                "status": j.status,
                "repeat": j.repeat,
                "seed": seed_of(sweep.spec, t, j.repeat),
                "objective": _finite(j.objective),
                "epochs_completed": j.epochs_completed,
            }
            for j in t.jobs
        ],
    }


# -- cancel -----------------------------------------------------------------------------


def cancel(
    *,
    session: Session,
    sessions: sessionmaker[Session],
    notify: Callable[[str], None],
    sweep_id: str,
    owner: str,
) -> Sweep:
    """End ``owner``'s running sweep: no trial starts after this, queued trials are
    cancelled and running ones stop at their next batch. 409 once it has ended."""
    sweep = get(session=session, sweep_id=sweep_id, owner=owner)
    if sweep.status in SweepStatus.TERMINAL:
        raise Conflict(f"sweep {sweep_id} already ended as {sweep.status}; nothing to cancel")
    # End the read transaction first: driver.end takes connections of its own.
    session.commit()
    done = driver.end(
        sessions,
        sweep_id,
        SweepStatus.CANCELLED,
        "cancelled by request",
        cancel_requested=True,
        notify=notify,
    )
    session.refresh(sweep)
    if not done:
        raise Conflict(f"sweep {sweep_id} already ended as {sweep.status}; nothing to cancel")
    return sweep


# -- importance -------------------------------------------------------------------------


def importance_for(sweep: Sweep, trials: Sequence[TrialRow]) -> dict[str, Any]:
    """fANOVA importance of each parameter (Optuna's), from the complete trials. Slow
    (imports Optuna and fits a forest): call it with no session open."""
    if sweep.kind != SweepKind.SEARCH:
        raise Conflict(
            f"sweep {sweep.id} is a comparison: its configurations are not drawn from a "
            "space; see its /comparison statistics"
        )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(complete) < 2:
        raise Conflict(
            f"importance needs at least 2 complete trials; sweep {sweep.id} has "
            f"{len(complete)} so far"
        )
    from service.sweeps.study import importance

    spec = driver.parse_spec(sweep)
    assert isinstance(spec, SweepSpec)
    try:
        values = importance(sweep.id, spec, trials)
    except (ValueError, RuntimeError) as exc:
        raise Conflict(
            f"cannot compute the importance of sweep {sweep.id}'s parameters: {exc}"
        ) from None
    ranked = sorted((-max(0.0, float(v)), k) for k, v in values.items())
    params = [{"name": name, "importance": -negated} for negated, name in ranked]
    return {
        "metric": sweep.spec["objective"]["metric"],
        "direction": sweep.spec["objective"]["direction"],
        "method": "fanova",
        "params": params,
        "trials_used": len(complete),
    }


_IMPORTANCE_CACHE: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_IMPORTANCE_LOCK = threading.Lock()
IMPORTANCE_CACHE_SIZE = 64


def cached_importance(sweep: Sweep, trials: Sequence[TrialRow]) -> dict[str, Any]:
    """:func:`importance_for`, remembered while the sweep's complete trials stay the same
    (the evaluator is seeded: the same trials give the same answer)."""
    key = (
        sweep.id,
        tuple(
            (t.number, trial_value(t), repr(sorted((t.optuna or {}).get("params", {}).items())))
            for t in trials
            if t.state == TrialState.COMPLETE
        ),
    )
    with _IMPORTANCE_LOCK:
        if key in _IMPORTANCE_CACHE:
            _IMPORTANCE_CACHE.move_to_end(key)
            return _IMPORTANCE_CACHE[key]
    out = importance_for(sweep, trials)
    with _IMPORTANCE_LOCK:
        _IMPORTANCE_CACHE[key] = out
        while len(_IMPORTANCE_CACHE) > IMPORTANCE_CACHE_SIZE:
            _IMPORTANCE_CACHE.popitem(last=False)
    return out


# -- comparison statistics --------------------------------------------------------------


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (None stays None and does not count as a test)."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def _num(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def comparison_for(sweep: Sweep, trials: Sequence[TrialRow]) -> ComparisonRead:
    """Per configuration (trial): the objective's mean, standard deviation and 95%
    confidence interval over its seeds; and the best configuration against each other,
    paired by seed (paired t-test, Wilcoxon signed-rank, Holm-adjusted)."""
    stored = sweep.spec
    repeats = int(stored.get("repeats") or 1)
    if repeats < 2:
        raise Conflict(
            f"sweep {sweep.id} runs each configuration once (repeats {repeats}); statistics "
            "need repeats of 2 or more"
        )
    direction = stored["objective"]["direction"]
    configs: list[ConfigurationStats] = []
    for t in trials:
        values: dict[str, float] = {}
        for j in t.jobs:
            value = _finite(j.objective)
            seed = seed_of(stored, t, j.repeat)
            if j.status == JobStatus.SUCCEEDED and value is not None and seed is not None:
                values[str(seed)] = value
        # The same statistics as the comparison chart's band (service.stats).
        over_seeds = spread(list(values.values()))
        configs.append(
            ConfigurationStats(
                number=t.number,
                label=trial_label(t),
                params=t.params,
                state=t.state,
                n=over_seeds.n,
                mean=over_seeds.mean,
                std=over_seeds.std,
                ci95=list(over_seeds.ci95) if over_seeds.ci95 is not None else None,
                values=values,
            )
        )
    key = _better(direction)

    def rank(c: ConfigurationStats) -> tuple[float, int]:
        assert c.mean is not None
        return key(c.mean), c.number

    scored = [c for c in configs if c.mean is not None]
    best = min(
        [c for c in scored if c.state == TrialState.COMPLETE] or scored, key=rank, default=None
    )
    tests = [] if best is None else _paired_tests(best, [c for c in configs if c is not best])
    return ComparisonRead(
        metric=stored["objective"]["metric"],
        direction=direction,
        seeds=list(stored.get("seeds") or []),
        configurations=configs,
        best=best.number if best is not None else None,
        tests=tests,
    )


def _paired_tests(best: ConfigurationStats, others: list[ConfigurationStats]) -> list[PairedTest]:
    """``best`` against each of ``others``, over the seeds both completed."""
    from scipy import stats

    tests: list[PairedTest] = []
    for other in others:
        common = [s for s in best.values if s in other.values]
        a = [best.values[s] for s in common]
        b = [other.values[s] for s in common]
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        t_stat = p_value = wilcoxon_p = None
        if len(common) >= 2 and len(set(diffs)) > 1:
            # Differences all alike (all 0 included): t is undefined, not infinite.
            res = stats.ttest_rel(a, b)
            t_stat, p_value = _num(res.statistic), _num(res.pvalue)
        if len(common) >= 2 and any(d != 0 for d in diffs):
            try:
                wilcoxon_p = _num(stats.wilcoxon(a, b).pvalue)
            except ValueError:
                wilcoxon_p = None
        tests.append(
            PairedTest(
                other=other.number,
                other_label=other.label,
                n_pairs=len(common),
                mean_difference=statistics.fmean(diffs) if diffs else None,
                t=t_stat,
                p_value=p_value,
                wilcoxon_p=wilcoxon_p,
            )
        )
    adjusted = holm([t.p_value for t in tests])
    return [t.model_copy(update={"holm_p": h}) for t, h in zip(tests, adjusted, strict=True)]
