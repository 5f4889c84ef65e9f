"""Runs sweeps: creates their trials as jobs, up to ``parallelism`` at once, until
``max_trials`` (or the budget) is reached, then ends the sweep.

:func:`advance` is the whole mechanism, and any process may call it at any time, as often
as it likes: a worker calls it when one of a sweep's trials ends, and every worker's
reaper thread calls :func:`tick` each second for every running sweep, which is what
starts a new sweep and what carries a sweep on after any process died at any point.
Trial ``n`` is created by whoever moves ``sweeps.trials_created`` from ``n`` to ``n + 1``
(a conditional update, in the same transaction as the trial's rows), so two drivers never
create the same trial, and a crash leaves either the whole trial or none of it. A trial's
jobs are committed before their messages are sent; a message lost in between is re-sent
by the reaper (``DESCENT_REDISPATCH_SECONDS``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

import service.models  # noqa: F401  (every table: the trials' rows refer to users, datasets)
from service.config import Settings
from service.db import rowcount, utcnow
from service.jobs import lifecycle
from service.jobs.models import Job
from service.jobs.service import dataset_shape, limits, new_job
from service.jobs.states import JobStatus
from service.queue import Send
from service.spec import JobSpec, SpecError, check_job
from service.spec.lab import round_rate
from service.spec.paths import PathError, apply
from service.spec.results import JobResult, RangeTestRecord
from service.sweeps.models import Sweep, SweepTrial
from service.sweeps.spec import AUTO, ComparisonSpec, SweepSpec
from service.sweeps.states import SweepKind, SweepStatus, TrialState
from service.sweeps.study import JobRow, TrialRow, sample

log = logging.getLogger(__name__)

Notify = Callable[[str], None]


def _quiet(_id: str) -> None:
    return None


def parse_spec(sweep: Sweep) -> SweepSpec | ComparisonSpec:
    """The sweep's stored spec, validated as it is, except that once its range test has
    set them, "auto" ends are those (``sweeps.auto_bounds``): the space trials sample."""
    if sweep.kind == SweepKind.COMPARISON:
        return ComparisonSpec.model_validate(sweep.spec)
    return SweepSpec.model_validate({**sweep.spec, "space": resolved_space(sweep)})


def resolved_space(sweep: Sweep) -> dict[str, Any]:
    """The stored spec's space (JSON), with each "auto" range its range test resolved
    written out as [low, high]."""
    space = dict(sweep.spec.get("space") or {})
    bounds = sweep.auto_bounds.bounds if sweep.auto_bounds is not None else None
    for path, ends in (bounds or {}).items():
        kind = next(iter(space[path]))
        space[path] = {kind: list(ends)}
    return space


def load_trials(session: Session, sweep_id: str) -> list[TrialRow]:
    """Every trial of the sweep with its jobs, in trial order."""
    return load_trials_of(session, [sweep_id])[sweep_id]


def load_trials_of(session: Session, sweep_ids: Sequence[str]) -> dict[str, list[TrialRow]]:
    """Every trial of each sweep with its jobs, in trial order (two queries in all)."""
    out: dict[str, dict[int, TrialRow]] = {sid: {} for sid in sweep_ids}
    if not sweep_ids:
        return {}
    for t in session.scalars(
        select(SweepTrial)
        .where(SweepTrial.sweep_id.in_(sweep_ids))
        .order_by(SweepTrial.sweep_id, SweepTrial.number)
    ):
        out[t.sweep_id][t.number] = TrialRow(t.number, dict(t.params), dict(t.optuna or {}))
    rows = session.execute(
        select(
            Job.id,
            Job.sweep_id,
            Job.status,
            Job.trial_number,
            Job.repeat,
            Job.objective,
            Job.intermediate,
            Job.pruner_attrs,
            Job.epochs_completed,
        ).where(Job.sweep_id.in_(sweep_ids))
    ).all()
    for r in sorted(rows, key=lambda r: (r.sweep_id, r.trial_number or 0, r.repeat or 0)):
        trial = out.get(r.sweep_id, {}).get(r.trial_number)
        if trial is not None:
            trial.jobs.append(
                JobRow(
                    r.id,
                    r.status,
                    r.repeat or 0,
                    r.objective,
                    dict(r.intermediate or {}),
                    dict(r.pruner_attrs or {}),
                    r.epochs_completed or 0,
                )
            )
    return {sid: list(trials.values()) for sid, trials in out.items()}


def _time_spent(sweep: Sweep, spec: SweepSpec | ComparisonSpec) -> bool:
    return bool(
        spec.budget
        and spec.budget.seconds
        and utcnow() - sweep.created_at > timedelta(seconds=spec.budget.seconds)
    )


def advance(
    sessions: sessionmaker[Session],
    settings: Settings,
    sweep_id: str,
    send: Send,
    notify: Notify = _quiet,
    notify_sweep: Notify = _quiet,
) -> int:
    """Create the trials the sweep has room for, or end it; returns trials created."""
    created = 0
    while True:
        with sessions() as s:
            sweep = s.get(Sweep, sweep_id)
            if sweep is None or sweep.status != SweepStatus.RUNNING:
                return created
            s.expunge(sweep)
            trials = load_trials(s, sweep_id)
        number = sweep.trials_created
        if any(t.number >= number for t in trials):
            continue  # another driver created a trial between the two reads: read again
        spec = parse_spec(sweep)
        if _time_spent(sweep, spec):
            reason = f"its time budget of {spec.budget.seconds:g} s is spent"  # type: ignore[union-attr]
            done = any(t.state == TrialState.COMPLETE for t in trials)
            status = SweepStatus.SUCCEEDED if done else SweepStatus.FAILED
            end(sessions, sweep_id, status, reason, notify=notify)
            notify_sweep(sweep_id)
            return created
        if sweep.auto_bounds is not None and sweep.auto_bounds.bounds is None:
            failure = resolve_auto(sessions, sweep)
            if failure is None:
                continue  # the ends are set: read the sweep again
            if failure == _WAIT:
                return created
            end(sessions, sweep_id, SweepStatus.FAILED, failure, notify=notify)
            notify_sweep(sweep_id)
            return created
        active = sum(t.active for t in trials)
        spent = sum(j.epochs_completed for t in trials for j in t.jobs)
        budget_epochs = spec.budget.epochs if spec.budget else None
        no_more = number >= sweep.max_trials or (
            budget_epochs is not None and spent >= budget_epochs
        )
        if no_more:
            if active == 0:
                _conclude(sessions, sweep, trials, spent, budget_epochs)
                notify_sweep(sweep_id)
            return created
        if active >= spec.parallelism:
            return created
        try:
            jobs = _trial_jobs(sessions, settings, sweep, spec, trials, number)
        except _Full:
            return created
        if jobs is None:
            continue  # someone else created trial ``number`` first: look again
        created += 1
        for job_id, dispatch, queue in jobs:
            try:
                send(job_id, dispatch, queue)
            except Exception as exc:
                # Committed and queued: the reaper re-sends it (DESCENT_REDISPATCH_SECONDS).
                log.warning("sweep %s: could not send job %s: %s", sweep_id, job_id, exc)
            notify(job_id)
        notify_sweep(sweep_id)


#: resolve_auto's answer while the range test has not ended.
_WAIT = "wait"
#: An "auto" range: from a hundredth of the rate at the smoothed minimum to that rate.
AUTO_SPAN = 100.0


def auto_ends(result: JobResult | None) -> tuple[float, float, str]:
    """(low, high, why) for "auto" ends from a range test's result; ValueError when the
    curve has no minimum past its first step (the loss never fell)."""
    best = result.best if isinstance(result, RangeTestRecord) else None
    if best is None or best.step <= 1 or not best.lr:
        raise ValueError(
            "the range test's smoothed loss never fell, so it sets no learning-rate range; "
            "give numeric bounds, or widen range_test.lr_min / lr_max"
        )
    high = round_rate(best.lr)
    low = round_rate(high / AUTO_SPAN)
    why = (
        f"the range test's smoothed loss is lowest at step {best.step} (lr {high:g}): "
        f"the range ends there and starts a hundredth below, at {low:g}"
    )
    return low, high, why


def resolve_auto(sessions: sessionmaker[Session], sweep: Sweep) -> str | None:
    """Set the "auto" ends of ``sweep``'s space from its range test, once that has ended.

    None when the ends are now set (by this call or a concurrent one: both compute the
    same values from the same result), ``_WAIT`` while the test is queued or running,
    else why the sweep fails. Writing the ends needs the sweep running: a cancelled
    sweep stays as it ended.
    """
    record = sweep.auto_bounds
    assert record is not None
    with sessions() as s:
        job = s.execute(
            select(Job.status, Job.status_reason, Job.result).where(Job.id == record.job_id)
        ).first()
    if job is None:
        return f"its range test (job {record.job_id}) is gone"
    if job.status in JobStatus.ACTIVE:
        return _WAIT
    if job.status != JobStatus.SUCCEEDED:
        return f"its range test (job {record.job_id}) {job.status}: {job.status_reason}"
    try:
        low, high, why = auto_ends(job.result)
    except ValueError as exc:
        return str(exc)
    bounds: dict[str, list[float]] = {}
    for path in record.paths:
        ends = next(iter(sweep.spec["space"][path].values()))
        lo = low if ends[0] == AUTO else ends[0]
        hi = high if ends[1] == AUTO else ends[1]
        if not lo < hi:
            return (
                f"space.{path}: the range test's end ({why}) leaves [{lo:g}, {hi:g}], which "
                "is empty; give numeric bounds"
            )
        bounds[path] = [lo, hi]
    resolved = record.model_copy(update={"bounds": bounds, "lr_at_minimum": high, "why": why})
    with sessions() as s, s.begin():
        s.execute(
            update(Sweep)
            .where(Sweep.id == sweep.id, Sweep.status == SweepStatus.RUNNING)
            .values(auto_bounds=resolved)
        )
    log.info("sweep %s: %s", sweep.id, why)
    return None


def _trial_jobs(
    sessions: sessionmaker[Session],
    settings: Settings,
    sweep: Sweep,
    spec: SweepSpec | ComparisonSpec,
    trials: list[TrialRow],
    number: int,
) -> list[tuple[str, int, str | None]] | None:
    """Create trial ``number`` and its jobs, if nobody did; their (id, dispatch, queue) to
    send."""
    if isinstance(spec, ComparisonSpec):
        conf = sweep.spec["configurations"][number]
        params: dict[str, Any] = dict(conf["set"])
        record: dict[str, Any] = {"label": conf["label"]}
    else:
        params, record = sample(sweep.id, spec, sweep.spec["sampler"]["seed"], trials, number)
    seeds = sweep.spec["seeds"]
    base = sweep.spec["base"]
    with sessions() as s, s.begin():
        took = rowcount(
            s.execute(
                update(Sweep)
                .where(
                    Sweep.id == sweep.id,
                    Sweep.trials_created == number,
                    Sweep.status == SweepStatus.RUNNING,
                )
                .values(trials_created=number + 1)
            )
        )
        if not took:
            return None
        # The sweep row is locked now: no one else can be creating a trial of this sweep.
        active = s.scalar(
            select(func.count(func.distinct(Job.trial_number))).where(
                Job.sweep_id == sweep.id, Job.status.in_(JobStatus.ACTIVE)
            )
        )
        if (active or 0) >= spec.parallelism:
            raise _Full  # rolls the claim of ``number`` back
        s.add(SweepTrial(sweep_id=sweep.id, number=number, params=params, optuna=record))
        out: list[tuple[str, int, str | None]] = []
        for repeat, seed in enumerate(seeds):
            values = dict(params)
            values.setdefault("training.seed", seed)
            job = _job_for(s, settings, sweep, base, values, number, repeat, len(seeds) > 1)
            s.add(job)
            if job.status == JobStatus.QUEUED:
                out.append((job.id, job.dispatch, job.queue))
    return out


class _Full(Exception):
    """The sweep already has ``parallelism`` trials in progress."""


def _job_for(
    s: Session,
    settings: Settings,
    sweep: Sweep,
    base: dict[str, Any],
    values: dict[str, Any],
    number: int,
    repeat: int,
    several: bool,
) -> Job:
    name = f"{sweep.name[:150]} #{number}" + (f" seed {values['training.seed']}" if several else "")
    # A trial is in its sweep's project: filtering jobs by project finds it.
    link = {
        "sweep_id": sweep.id,
        "trial_number": number,
        "repeat": repeat,
        "project_id": sweep.project_id,
        # The sweep's pool; a sweep from before queues were recorded: the driver's own.
        "queue": sweep.queue or settings.queue,
    }
    problem: str | None = None
    body: dict[str, Any] = base
    try:
        body = apply(base, values)
        body["name"] = name
        spec = JobSpec.model_validate(body)
        shape = dataset_shape(session=s, spec=spec, owner=sweep.owner_id)
        errors = check_job(spec, shape, limits(settings))
        if not errors:
            return new_job(spec, shape, sweep.owner_id, **link)
        problem = "; ".join(f"{e.field}: {e.message}" for e in errors)
    except (PathError, SpecError) as exc:
        problem = str(exc)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
    # A sampled combination the checks of each value alone could not foresee: the trial
    # fails at once, saying why, and the sampler learns from it.
    now = utcnow()
    return Job(
        id=str(uuid.uuid4()),
        owner_id=sweep.owner_id,
        name=name,
        status=JobStatus.FAILED,
        status_reason=f"the trial's values make an invalid job: {problem}",
        spec=body,
        task=sweep.task,
        n_parameters=0,
        created_at=now,
        finished_at=now,
        **link,
    )


def _conclude(
    sessions: sessionmaker[Session],
    sweep: Sweep,
    trials: list[TrialRow],
    spent: int,
    budget_epochs: int | None,
) -> None:
    outcomes = [t.outcome()[0] for t in trials]
    complete = outcomes.count("complete")
    counts = ", ".join(
        f"{outcomes.count(k)} {k}" for k in ("complete", "pruned", "fail") if k in outcomes
    )
    if complete:
        status, reason = SweepStatus.SUCCEEDED, f"{len(trials)} trials: {counts}"
        if budget_epochs is not None and spent >= budget_epochs and len(trials) < sweep.max_trials:
            reason += f"; stopped at its budget of {budget_epochs} epochs"
    else:
        status, reason = SweepStatus.FAILED, f"no trial completed ({counts or 'no trials'})"
    with sessions() as s, s.begin():
        s.execute(
            update(Sweep)
            .where(Sweep.id == sweep.id, Sweep.status == SweepStatus.RUNNING)
            .values(status=status, status_reason=reason, finished_at=utcnow())
        )


def end(
    sessions: sessionmaker[Session],
    sweep_id: str,
    status: SweepStatus,
    reason: str,
    *,
    cancel_requested: bool = False,
    notify: Notify = _quiet,
) -> bool:
    """End a running sweep now (cancelled, or out of time) and stop its trials.

    Two transactions: the sweep first — after it no driver can create a trial, since
    creating one needs the sweep running — then its jobs: queued ones are cancelled, running
    ones asked to stop. A crash between the two is finished by :func:`tick`.
    """
    with sessions() as s, s.begin():
        values: dict[str, Any] = {
            "status": status,
            "status_reason": reason,
            "finished_at": utcnow(),
        }
        if cancel_requested:
            values["cancel_requested"] = True
        done = rowcount(
            s.execute(
                update(Sweep)
                .where(Sweep.id == sweep_id, Sweep.status == SweepStatus.RUNNING)
                .values(**values)
            )
        )
    stop_trials(sessions, sweep_id, f"the sweep ended: {reason}", notify=notify)
    return bool(done)


def stop_trials(
    sessions: sessionmaker[Session], sweep_id: str, reason: str, *, notify: Notify = _quiet
) -> int:
    """Cancel the sweep's queued jobs and ask its running ones to stop
    (``lifecycle.stop_trials``); returns how many it changed."""
    with sessions() as s, s.begin():
        ids = lifecycle.stop_trials(s, sweep_id=sweep_id, reason=reason, now=utcnow())
    for job_id in ids:
        notify(job_id)
    return len(ids)


def tick(
    sessions: sessionmaker[Session],
    settings: Settings,
    send: Send,
    notify: Notify = _quiet,
    notify_sweep: Notify = _quiet,
) -> None:
    """Advance every running sweep; stop the trials of ended sweeps still going."""
    with sessions() as s:
        running = s.scalars(select(Sweep.id).where(Sweep.status == SweepStatus.RUNNING)).all()
        leftover = s.scalars(
            select(Job.sweep_id)
            .join(Sweep, Sweep.id == Job.sweep_id)
            .where(
                Sweep.status != SweepStatus.RUNNING,
                (Job.status == JobStatus.QUEUED)
                | ((Job.status == JobStatus.RUNNING) & ~Job.cancel_requested),
            )
            .distinct()
        ).all()
    for sweep_id in leftover:
        if sweep_id is not None:  # the join makes it so; the column may be null elsewhere
            stop_trials(sessions, sweep_id, "the sweep has ended", notify=notify)
    for sweep_id in running:
        try:
            advance(sessions, settings, sweep_id, send, notify, notify_sweep)
        except Exception:
            log.exception("sweep %s: could not advance it", sweep_id)


__all__ = [
    "advance",
    "end",
    "load_trials",
    "load_trials_of",
    "parse_spec",
    "resolved_space",
    "stop_trials",
    "tick",
]
