"""``GET /v1/sweeps/{id}/events``: a sweep's trials and epochs as server-sent events.

The contract (docs/events.md, "Sweep events"):

- ``event: epoch`` once per epoch recorded by any of the sweep's jobs, in the order they
  were recorded, with ``id:`` = the epoch's sweep event number (``EpochMetric.sweep_seq``:
  taken from the sweep row in the recording transaction, so numbers become visible in
  order and "every epoch after N" never misses one);
- ``event: trial``: a snapshot of one trial job — one per job when the stream opens, then
  one whenever a job appears (a trial starts) or its status or attempt changes (running,
  pruned, succeeded, …). A job's ending goes after its epochs;
- ``event: sweep``: a snapshot of the sweep (status, trials created, counts of trials by
  state, the best trial) when the stream opens and whenever it changes;
- ``event: end`` once the sweep has ended and none of its jobs is queued or running, after
  every epoch they recorded; the stream then closes;
- every event but ``epoch`` carries ``id:`` = the last epoch number sent so far, so a
  client reconnecting with ``Last-Event-ID`` (or ``?after=``) gets exactly the epochs it
  missed — and fresh snapshots of the sweep and its jobs;
- a comment (``: keep-alive``) on a quiet stream every ``DESCENT_EVENTS_HEARTBEAT_SECONDS``.

How: as the job stream (:mod:`service.jobs.events`), SQL is the only source. A stream
reads the sweep row, then its jobs, then the epochs after its cursor, sends what is new
and sleeps until the :class:`~service.jobs.events.EventHub` wakes it. The hub polls every
watched sweep in one query (its status, trials, event number and the states of its
jobs: :func:`sweep_versions`), and with Redis the workers' notifications of each running
job (``descent:job:<id>``, and ``descent:job:<sweep id>`` for the sweep itself) wake it at
once. Reading the sweep before its jobs and the jobs before the epochs is what makes the
end exact: no trial is created once the sweep has ended, and a job ends only after its
last epoch was committed.

Jobs that have ended do not change: after the first read, a stream reads only the jobs of
trials from the oldest one still in progress on (trials are created in number order),
so a long sweep costs each wake-up the trials in flight, not all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.jobs import events as job_events
from service.jobs.events import RETRY_MS, EventHub, sse
from service.jobs.models import EpochMetric, Job, JobStatus
from service.sweeps.models import Sweep, SweepStatus, SweepTrial, TrialState
from service.sweeps.study import JobRow, TrialRow

#: The hub's name for sweep keys (see :meth:`EventHub.add_source`).
SOURCE = "sweep"
#: Sweep ids per query of the hub's poll.
POLL_CHUNK = 500


def batch() -> int:
    """Epochs read per query (the job stream's, so one setting serves both)."""
    return job_events.BATCH


# -- what the hub polls --------------------------------------------------------------


def sweep_versions(sessions: sessionmaker[Session], sweep_ids: list[str]) -> dict[str, tuple]:
    """A version of each sweep that changes whenever its stream has something to send:
    its status, its trials, its last event number (each recorded epoch takes one), and
    how many of its jobs are in each status, with their attempts."""
    out: dict[str, tuple] = {}
    with sessions() as s:
        for i in range(0, len(sweep_ids), POLL_CHUNK):
            chunk = sweep_ids[i : i + POLL_CHUNK]
            for r in s.execute(
                select(Sweep.id, Sweep.status, Sweep.trials_created, Sweep.event_seq).where(
                    Sweep.id.in_(chunk)
                )
            ):
                out[r[0]] = tuple(r[1:])
            jobs = s.execute(
                select(Job.sweep_id, Job.status, func.count(), func.sum(Job.attempt))
                .where(Job.sweep_id.in_(chunk))
                .group_by(Job.sweep_id, Job.status)
            ).all()
            for sweep_id, status, n, attempts in sorted(jobs, key=lambda r: (r[0], r[1])):
                if sweep_id in out:
                    out[sweep_id] += (status, n, attempts)
    return out


def use_hub(hub: EventHub) -> EventHub:
    """The hub, able to watch sweeps."""
    hub.add_source(SOURCE, sweep_versions)
    return hub


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepState:
    status: SweepStatus
    status_reason: str | None
    trials_created: int


@dataclass(frozen=True)
class JobState:
    id: str
    trial: int
    repeat: int
    status: JobStatus
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


def _epochs_of(spec: Any) -> int | None:
    try:
        return int(spec["training"]["epochs"])
    except (KeyError, TypeError, ValueError):
        return None


def read_snapshot(
    sessions: sessionmaker[Session], sweep_id: str, *, after: int, jobs_from: int, trials_from: int
) -> Snapshot:
    """The sweep row, then the jobs of trials ``jobs_from`` on, then the trials from
    ``trials_from`` on, then up to :func:`batch` epochs after event ``after`` — in that
    order (the trials after the jobs: a job's trial is committed with it)."""
    with sessions() as s:
        row = s.execute(
            select(Sweep.status, Sweep.status_reason, Sweep.trials_created).where(
                Sweep.id == sweep_id
            )
        ).one_or_none()
        if row is None:
            return Snapshot(None, [], [], [])
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
            .limit(batch())
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
        [EpochRow(e[0], e[1], e[2], e[3] or 0, e[4], dict(e[5] or {}), e[6]) for e in epochs],
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
                row.jobs.append(JobRow(j.id, j.status, j.repeat, j.objective))
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
            "recorded_at": job_events._iso(e.recorded_at),
        }


class _JobWatches:
    """The hub's watches of the sweep's running jobs, all waking one event (so that, with
    Redis, a worker's notification of an epoch wakes the sweep's streams at once)."""

    def __init__(self, hub: EventHub, event: asyncio.Event) -> None:
        self.hub = hub
        self.event = event
        self._held: dict[str, AbstractAsyncContextManager[asyncio.Event]] = {}

    async def set(self, job_ids: list[str]) -> None:
        wanted = set(job_ids)
        for job_id in [k for k in self._held if k not in wanted]:
            await self._held.pop(job_id).__aexit__(None, None, None)
        for job_id in wanted - self._held.keys():
            watch = self.hub.watch(job_id, event=self.event)
            await watch.__aenter__()
            self._held[job_id] = watch

    async def close(self) -> None:
        await self.set([])


async def sweep_events(
    hub: EventHub,
    *,
    sweep_id: str,
    objective: dict[str, Any],
    after: int,
    heartbeat_seconds: float,
    max_seconds: float,
) -> AsyncIterator[str]:
    """The event stream of sweep ``sweep_id`` (the caller has checked who may see it);
    ``objective`` is the stored spec's ``{metric, direction, measure}``."""
    use_hub(hub)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    cursor = after
    known = _Sweep(sweep_id, objective)
    shown_sweep: dict[str, Any] | None = None
    ending: dict[str, JobState] = {}  # jobs whose end waits for their epochs
    yield f"retry: {RETRY_MS}\n\n"
    async with contextlib.AsyncExitStack() as stack:
        changed = await stack.enter_async_context(hub.watch(sweep_id, source=SOURCE))
        jobs = _JobWatches(hub, changed)
        stack.push_async_callback(jobs.close)
        while True:
            changed.clear()
            read = functools.partial(
                read_snapshot,
                after=cursor,
                jobs_from=known.jobs_from(),
                trials_from=known.trials_from(),
            )
            snap = await hub.read(read, sweep_id)
            if snap.sweep is None:
                return  # deleted while streaming
            fresh = known.update(snap)
            if hub.redis_url:
                await jobs.set(known.active)
            if shown_sweep is None:
                shown_sweep = known.snapshot()
                yield sse("sweep", shown_sweep, cursor)
            # A job's new state goes before the epochs read with it, its end after them:
            # a trial reads running → epochs … → pruned.
            for job in sorted(fresh, key=lambda j: (j.trial, j.repeat)):
                if job.status in JobStatus.TERMINAL:
                    ending[job.id] = job
                else:
                    ending.pop(job.id, None)
                    yield sse("trial", known.trial_event(job), cursor)
            for e in snap.epochs:
                cursor = e.seq
                yield sse("epoch", known.epoch_event(e), cursor)
            if len(snap.epochs) >= batch():
                continue  # more history to replay
            for job in sorted(ending.values(), key=lambda j: (j.trial, j.repeat)):
                yield sse("trial", known.trial_event(known.jobs[job.id]), cursor)
            ending.clear()
            now = known.snapshot()
            if now != shown_sweep:
                shown_sweep = now
                yield sse("sweep", now, cursor)
            if snap.sweep.status != SweepStatus.RUNNING and not known.active:
                yield sse("end", now, cursor)
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return  # the client reconnects with Last-Event-ID
            try:
                await asyncio.wait_for(changed.wait(), min(heartbeat_seconds, remaining))
            except TimeoutError:
                yield ": keep-alive\n\n"


# -- the OpenAPI description ---------------------------------------------------------


class TrialCountsEvent(BaseModel):
    queued: int
    running: int
    complete: int
    pruned: int
    failed: int
    cancelled: int


class BestEvent(BaseModel):
    number: int
    label: str | None = Field(description="The configuration's label (comparisons).")
    params: dict[str, Any]
    value: float = Field(description="The trial's objective: the mean over its seeds.")
    job_ids: list[str]


class SweepStateEvent(BaseModel):
    """`event: sweep`: sent on connecting and whenever the sweep changes."""

    sweep_id: str
    status: SweepStatus
    status_reason: str | None
    trials_created: int
    counts: TrialCountsEvent = Field(description="Trials by state.")
    best: BestEvent | None = Field(description="The best complete trial so far.")


class SweepEndEvent(SweepStateEvent):
    """`event: end`: the sweep ended and none of its jobs runs; the stream closes."""


class TrialEvent(BaseModel):
    """`event: trial`: one of the sweep's jobs (a trial runs one per seed), on connecting
    and when it appears or changes status or attempt."""

    sweep_id: str
    trial: int = Field(description="The trial's number.")
    label: str | None = Field(description="The configuration's label (comparisons).")
    trial_state: TrialState
    job_id: str
    repeat: int = Field(description="Which of the trial's seeds (0-based).")
    status: JobStatus
    status_reason: str | None
    attempt: int
    epochs_completed: int
    epochs: int | None = Field(description="Epochs asked for.")
    objective: float | None = Field(description="The job's objective so far.")
    params: dict[str, Any] = Field(description="Dotted path → the value the trial set.")


class SweepEpochEvent(BaseModel):
    """`event: epoch`: an epoch of one of the sweep's jobs; the event's `id:` is its
    sweep event number."""

    sweep_id: str
    trial: int
    job_id: str
    repeat: int
    epoch: int
    metrics: dict[str, float | None] = Field(description="As `GET /v1/jobs/{id}/metrics`.")
    objective: float | None = Field(description="The objective metric's value at this epoch.")
    recorded_at: str = Field(description="When the worker recorded it (ISO 8601, UTC).")


def _inline(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.pop("$defs", {})
    # Inline the nested models: the schema lives inside an OpenAPI document, where
    # "#/$defs/…" would point nowhere.
    return _resolve(schema, defs)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _resolve(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _resolve(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


SWEEP_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["sweep", "trial", "epoch", "end"]},
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The last epoch's sweep event number sent.",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [
                    _inline(m)
                    for m in (SweepEpochEvent, TrialEvent, SweepStateEvent, SweepEndEvent)
                ]
            },
        },
    },
}
