"""Sweep rows written straight to the database, as the workers' drivers leave them: a
trial (``sweep_trials``) and its jobs (one per seed) in whatever state a test needs.

The API never creates trials (the workers do), so the tests of what it reports about
them — the leaderboard, the summary, importance, statistics — build the rows here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from service.db import utcnow
from service.jobs.service import dataset_shape, new_job
from service.jobs.states import JobStatus
from service.spec import JobSpec
from service.spec.paths import apply
from service.sweeps.models import Sweep, SweepTrial


@dataclass
class J:
    """One job of a trial: its status, objective so far and epochs run."""

    status: JobStatus = JobStatus.SUCCEEDED
    objective: float | None = None
    epochs: int = 3


def float_record(
    params: dict[str, Any], bounds: dict[str, tuple[float, float, bool]]
) -> dict[str, Any]:
    """Optuna's record of a trial whose parameters are floats: ``bounds`` gives each
    path's (low, high, log), as its sweep's space has it."""
    from optuna.distributions import FloatDistribution, distribution_to_json

    dists = {
        k: distribution_to_json(FloatDistribution(*bounds[k][:2], log=bounds[k][2])) for k in params
    }
    return {"params": dict(params), "distributions": dists, "system_attrs": {}}


def add_trial(
    session: Session,
    sweep_id: str,
    number: int,
    params: dict[str, Any],
    jobs: Sequence[J],
    *,
    record: dict[str, Any] | None = None,
) -> list[str]:
    """Trial ``number`` of the sweep with ``params`` and one job per entry of ``jobs``
    (repeat i gets the sweep's i-th seed); returns the job ids. Commits."""
    sweep = session.get(Sweep, sweep_id)
    assert sweep is not None
    stored = sweep.spec
    session.add(SweepTrial(sweep_id=sweep_id, number=number, params=params, optuna=record or {}))
    ids = []
    now = utcnow()
    for repeat, j in enumerate(jobs):
        values = dict(params)
        values.setdefault("training.seed", stored["seeds"][repeat])
        spec = JobSpec.model_validate(apply(stored["base"], values))
        shape = dataset_shape(session=session, spec=spec, owner=sweep.owner_id)
        job = new_job(
            spec, shape, sweep.owner_id, sweep_id=sweep_id, trial_number=number, repeat=repeat
        )
        job.status = j.status
        job.objective = j.objective
        job.epochs_completed = j.epochs
        if j.objective is not None:
            job.intermediate = {str(e + 1): j.objective for e in range(j.epochs)}
        if j.status != "queued":
            job.started_at = now
            job.attempt = 1
        if j.status not in JobStatus.ACTIVE:
            job.finished_at = now
        if j.status == JobStatus.RUNNING:
            job.heartbeat_at = now
        session.add(job)
        ids.append(job.id)
    sweep.trials_created = max(sweep.trials_created, number + 1)
    session.commit()
    return ids
