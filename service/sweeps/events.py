"""``GET /v1/sweeps/{id}/events``: a sweep's trials and epochs as server-sent events.

The contract (docs/events.md, "Sweep events"):

- ``event: sweep``: a snapshot of the sweep (status, trials created, counts of trials by
  state, the best trial) first, when the stream opens, and whenever it changes;
- ``event: trial``: a snapshot of one trial job — one per job when the stream opens, then
  one whenever a job appears (a trial starts) or its status or attempt changes (running,
  pruned, succeeded, …). A job's ending goes after its epochs;
- ``event: epoch`` once per epoch recorded by any of the sweep's jobs, in the order they
  were recorded, with ``id:`` = the epoch's sweep event number (``EpochMetric.sweep_seq``:
  taken from the sweep row in the recording transaction, so numbers become visible in
  order and "every epoch after N" never misses one);
- ``event: end`` once the sweep has ended and none of its jobs is queued or running, after
  every epoch they recorded; the stream then closes;
- every event but ``epoch`` carries ``id:`` = the last epoch number sent so far, so a
  client reconnecting with ``Last-Event-ID`` (or ``?after=``) gets exactly the epochs it
  missed — and fresh snapshots of the sweep and its jobs;
- a comment (``: keep-alive``) on a quiet stream every ``DESCENT_EVENTS_HEARTBEAT_SECONDS``.

How: :class:`SweepFeed` is what is particular to a sweep's stream — read the sweep row,
then its jobs, then the epochs after the cursor; turn what is new into events — and
:func:`service.streams.follow` runs it, as it runs a job's. The hub polls every watched
sweep in one query (its status, trials, event number and the states of its jobs:
:func:`versions`), and with Redis the workers' notifications of each running job
(``descent:job:<id>``, and ``descent:job:<sweep id>`` for the sweep itself) wake it at
once. Reading the sweep before its jobs and the jobs before the epochs is what makes the
end exact: no trial is created once the sweep has ended, and a job ends only after its
last epoch was committed.

Jobs that have ended do not change: after the first read, a stream reads only the jobs of
trials from the oldest one still in progress on (trials are created in number order),
so a long sweep costs each wake-up the trials in flight, not all of them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.jobs import events as job_events
from service.jobs.models import EpochMetric, Job
from service.jobs.states import JobStatus
from service.streams import Event, Feed, Step, iso
from service.sweeps.models import Sweep, SweepTrial
from service.sweeps.states import SweepStatus, TrialState
from service.sweeps.study import JobRow, TrialRow

__all__ = ["SOURCE", "Snapshot", "SweepFeed", "read_snapshot", "versions"]

#: The hub's name for sweep keys (see :class:`~service.streams.EventHub`).
SOURCE = "sweep"


# -- what the hub polls --------------------------------------------------------------


def versions(sessions: sessionmaker[Session], sweep_ids: list[str]) -> dict[str, tuple]:
    """A version of each sweep that changes whenever its stream has something to send:
    its status, its trials, its last event number (each recorded epoch takes one), and
    how many of its jobs are in each status, with their attempts."""
    out: dict[str, tuple] = {}
    with sessions() as s:
        for r in s.execute(
            select(Sweep.id, Sweep.status, Sweep.trials_created, Sweep.event_seq).where(
                Sweep.id.in_(sweep_ids)
            )
        ):
            out[r[0]] = tuple(r[1:])
        jobs = s.execute(
            select(Job.sweep_id, Job.status, func.count(), func.sum(Job.attempt))
            .where(Job.sweep_id.in_(sweep_ids))
            .group_by(Job.sweep_id, Job.status)
        ).all()
    for sweep_id, status, n, attempts in sorted(jobs, key=lambda r: (r[0], r[1])):
        if sweep_id in out:
            out[sweep_id] += (status, n, attempts)
    return out


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepState:
    status: str
    status_reason: str | None
    trials_created: int


@dataclass(frozen=True)
class JobState:
    id: str
    trial: int
    repeat: int
    status: str
    status_reason: str | None
    attempt: int
    epochs_completed: int
    epochs: int | None
    objective: float | None


@dataclass(frozen=True)
class EpochRow:
    seq: int
    job_id: str
    trial: int
    repeat: int
    epoch: int
    values: dict[str, Any]
    recorded_at: datetime


@dataclass(frozen=True)
class Snapshot:
    sweep: SweepState | None  # None: the sweep was deleted
    trials: list[tuple[int, dict[str, Any], dict[str, Any]]]  # number, params, optuna
    jobs: list[JobState]
    epochs: list[EpochRow]
    more: bool  # a full batch of epochs was read: there may be more after them


def _epochs_of(spec: Any) -> int | None:
    try:
        return int(spec["training"]["epochs"])
    except (KeyError, TypeError, ValueError):
        return None


def read_snapshot(
    sessions: sessionmaker[Session],
    sweep_id: str,
    *,
    after: int,
    limit: int,
    jobs_from: int,
    trials_from: int,
) -> Snapshot:
    """The sweep row, then the jobs of trials ``jobs_from`` on, then the trials from
    ``trials_from`` on, then up to ``limit`` epochs after event ``after`` — in that
    order (the trials after the jobs: a job's trial is committed with it)."""
    with sessions() as s:
        row = s.execute(
            select(Sweep.status, Sweep.status_reason, Sweep.trials_created).where(
                Sweep.id == sweep_id
            )
        ).one_or_none()
        if row is None:
            return Snapshot(None, [], [], [], False)
        jobs = s.execute(
            select(
                Job.id,
                Job.trial_number,
                Job.repeat,
                Job.status,
                Job.status_reason,
                Job.attempt,
                Job.epochs_completed,
                Job.spec,
                Job.objective,
            ).where(Job.sweep_id == sweep_id, Job.trial_number >= jobs_from)
        ).all()
        trials = s.execute(
            select(SweepTrial.number, SweepTrial.params, SweepTrial.optuna)
            .where(SweepTrial.sweep_id == sweep_id, SweepTrial.number >= trials_from)
            .order_by(SweepTrial.number)
        ).all()
        epochs = s.execute(
            select(
                EpochMetric.sweep_seq,
                EpochMetric.job_id,
                Job.trial_number,
                Job.repeat,
                EpochMetric.epoch,
                EpochMetric.values,
                EpochMetric.recorded_at,
            )
            .join(Job, Job.id == EpochMetric.job_id)
            .where(Job.sweep_id == sweep_id, EpochMetric.sweep_seq > after)
            .order_by(EpochMetric.sweep_seq)
            .limit(limit)
        ).all()
    return Snapshot(
        SweepState(*row),
        [(t[0], dict(t[1] or {}), dict(t[2] or {})) for t in trials],
        [
            JobState(
                j.id,
                j.trial_number,
                j.repeat or 0,
                j.status,
                j.status_reason,
                j.attempt,
                j.epochs_completed,
                _epochs_of(j.spec),
                j.objective,
            )
            for j in jobs
        ],
        [
            EpochRow(e[0], e[1], e[2], e[3] or 0, e[4], dict(e[5] or {}), e[6])
            for e in epochs
            if e[0] is not None and e[2] is not None  # a numbered epoch of a trial
        ],
        len(epochs) >= limit,
    )


# -- what is sent ----------------------------------------------------------------------


class _Sweep:
    """What a stream knows of its sweep: every trial and job it has read."""

    def __init__(self, sweep_id: str, objective: dict[str, Any]) -> None:
        self.id = sweep_id
        self.metric: str = objective.get("metric", "val_loss")
        self.direction: str = objective.get("direction") or "min"
        self.state: SweepState | None = None
        self.trials: dict[int, tuple[dict[str, Any], str | None]] = {}  # params, label
        self.jobs: dict[str, JobState] = {}
        self._rows: dict[int, TrialRow] | None = None

    def update(self, snap: Snapshot) -> list[JobState]:
        """Take in a read; return the jobs it shows in a new (status, attempt)."""
        self.state = snap.sweep
        self._rows = None
        for number, params, optuna in snap.trials:
            label = optuna.get("label")
            self.trials[number] = (params, label if isinstance(label, str) else None)
        return [j for j in snap.jobs if self._replace(j)]

    def _replace(self, job: JobState) -> bool:
        old = self.jobs.get(job.id)
        self.jobs[job.id] = job
        return old is None or (old.status, old.attempt) != (job.status, job.attempt)

    @property
    def active(self) -> list[str]:
        return [j.id for j in self.jobs.values() if j.status in JobStatus.ACTIVE]

    def jobs_from(self) -> int:
        """The oldest trial that may still change (see the module's docstring)."""
        going = [j.trial for j in self.jobs.values() if j.status not in JobStatus.TERMINAL]
        if going:
            return min(going)
        return max((j.trial for j in self.jobs.values()), default=-1) + 1

    def trials_from(self) -> int:
        return max(self.trials, default=-1) + 1

    def rows(self) -> dict[int, TrialRow]:
        """Every trial with its jobs, by number (kept until the next read)."""
        if self._rows is None:
            rows = {n: TrialRow(n, params, {}) for n, (params, _) in sorted(self.trials.items())}
            for j in sorted(self.jobs.values(), key=lambda j: (j.trial, j.repeat)):
                row = rows.setdefault(j.trial, TrialRow(j.trial, {}, {}))
                row.jobs.append(JobRow(j.id, JobStatus(j.status), j.repeat, j.objective))
            self._rows = rows
        return self._rows

    def snapshot(self) -> dict[str, Any]:
        assert self.state is not None
        counts = dict.fromkeys(TrialState, 0)
        best: dict[str, Any] | None = None
        for _, trial in sorted(self.rows().items()):
            state = trial.state
            counts[state] += 1
            _, value = trial.outcome()
            if state != "complete" or value is None:
                continue
            better = best is None or (
                value > best["value"] if self.direction == "max" else value < best["value"]
            )
            if better:
                params, label = self.trials.get(trial.number, (trial.params, None))
                best = {
                    "number": trial.number,
                    "label": label,
                    "params": params,
                    "value": value,
                    "job_ids": [j.id for j in trial.jobs],
                }
        return {
            "sweep_id": self.id,
            "status": self.state.status,
            "status_reason": self.state.status_reason,
            "trials_created": self.state.trials_created,
            "counts": counts,
            "best": best,
        }

    def trial_event(self, job: JobState) -> dict[str, Any]:
        params, label = self.trials.get(job.trial, ({}, None))
        return {
            "sweep_id": self.id,
            "trial": job.trial,
            "label": label,
            "trial_state": self.rows().get(job.trial, TrialRow(job.trial, {}, {})).state,
            "job_id": job.id,
            "repeat": job.repeat,
            "status": job.status,
            "status_reason": job.status_reason,
            "attempt": job.attempt,
            "epochs_completed": job.epochs_completed,
            "epochs": job.epochs,
            "objective": job.objective,
            "params": params,
        }

    def epoch_event(self, e: EpochRow) -> dict[str, Any]:
        value = e.values.get(self.metric)
        return {
            "sweep_id": self.id,
            "trial": e.trial,
            "job_id": e.job_id,
            "repeat": e.repeat,
            "epoch": e.epoch,
            "metrics": e.values,
            "objective": value if isinstance(value, int | float) else None,
            "recorded_at": iso(e.recorded_at),
        }


class SweepFeed(Feed[Snapshot]):
    """The stream of sweep ``sweep_id``; ``objective`` is its stored spec's
    ``{metric, direction, measure}``."""

    source = SOURCE

    def __init__(self, sweep_id: str, *, objective: dict[str, Any]) -> None:
        self.key = sweep_id
        self.known = _Sweep(sweep_id, objective)
        self.shown: dict[str, Any] | None = None  # the sweep event last sent
        self.ending: dict[str, JobState] = {}  # jobs whose end waits for their epochs

    def read(self, sessions: sessionmaker[Session], *, after: int, limit: int) -> Snapshot:
        return read_snapshot(
            sessions,
            self.key,
            after=after,
            limit=limit,
            jobs_from=self.known.jobs_from(),
            trials_from=self.known.trials_from(),
        )

    def notified_by(self) -> Collection[tuple[str, str]]:
        # A worker notifies its job, not its sweep: an epoch wakes the stream at once.
        return [(job_events.SOURCE, job_id) for job_id in self.known.active]

    def render(self, snap: Snapshot) -> Step | None:
        if snap.sweep is None:
            return None
        known = self.known
        fresh = known.update(snap)
        events: list[Event] = []
        if self.shown is None:
            self.shown = known.snapshot()
            events.append(Event("sweep", self.shown))
        # A job's new state goes before the epochs read with it, its end after them:
        # a trial reads running → epochs … → pruned.
        for job in sorted(fresh, key=lambda j: (j.trial, j.repeat)):
            if job.status in JobStatus.TERMINAL:
                self.ending[job.id] = job
            else:
                self.ending.pop(job.id, None)
                events.append(Event("trial", known.trial_event(job)))
        for e in snap.epochs:
            events.append(Event("epoch", known.epoch_event(e), advance=e.seq))
        if snap.more:
            return Step(events, more=True)
        for job in sorted(self.ending.values(), key=lambda j: (j.trial, j.repeat)):
            events.append(Event("trial", known.trial_event(known.jobs[job.id])))
        self.ending.clear()
        now = known.snapshot()
        if now != self.shown:
            self.shown = now
            events.append(Event("sweep", now))
        if snap.sweep.status != SweepStatus.RUNNING and not known.active:
            events.append(Event("end", now))
            return Step(events, ended=True)
        return Step(events)
