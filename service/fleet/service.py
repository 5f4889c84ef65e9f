"""Reading the fleet: the workers' rows with their derived state, what each runs, and each
queue's jobs and broker depth (``GET /v1/workers``). The workers write their rows
themselves; nothing here writes.

A worker's state is what it last wrote, except that one whose heartbeat is older than the
lease and that never wrote ``stopped`` is ``lost``: the same rule the reaper applies to a
job's lease, so by the time a worker shows as lost its jobs have been (or are being)
taken back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import Session

from service.auth.models import User
from service.errors import Invalid
from service.fleet import liveness
from service.fleet.models import Worker
from service.fleet.schemas import (
    DeviceRead,
    FleetRead,
    QueueRead,
    WorkerJob,
    WorkerRead,
    WorkerState,
)
from service.jobs.models import Job
from service.jobs.service import total_rows
from service.jobs.states import JobStatus
from service.queue import Producer
from service.spec import FieldError

log = logging.getLogger(__name__)

#: How long an ended worker (stopped, or lost) stays in the default listing: long enough
#: to see last night's crash, short enough that a fleet restarted daily stays readable.
ENDED_SHOWN_FOR = timedelta(hours=24)
#: Where a listed worker sorts: the live ones first, then the lost, then the stopped.
_RANK = {
    WorkerState.READY: 0,
    WorkerState.STARTING: 1,
    WorkerState.STOPPING: 2,
    WorkerState.LOST: 3,
    WorkerState.STOPPED: 4,
}


def derived_state(worker: Worker, *, now: datetime, lease_seconds: float) -> WorkerState:
    """The state a worker is shown in: its own, or ``lost`` when it went silent (the rule
    of service/fleet/liveness.py, which the reaper and /readyz apply too)."""
    try:
        return WorkerState(liveness.state_of(worker, now, lease_seconds))
    except ValueError:  # a state a newer worker writes: alive, and no more is known
        return WorkerState.STARTING


def parse_states(values: Iterable[str]) -> set[WorkerState]:
    """``["ready", "lost"]`` → the states; 422 naming ``state`` for any other word."""
    allowed = [s.value for s in WorkerState]
    out = set()
    for value in values:
        if value not in allowed:
            raise Invalid(
                f"state: unknown worker state {value!r}",
                fields=[FieldError("state", f"unknown worker state {value!r}", allowed)],
            )
        out.add(WorkerState(value))
    return out


def _state_clause(state: WorkerState, now: datetime, lease_seconds: float) -> ColumnElement[bool]:
    """Where the workers shown in ``state`` are, in SQL (the rule of :func:`derived_state`)."""
    if state == WorkerState.STOPPED:
        return Worker.state == WorkerState.STOPPED.value
    if state == WorkerState.LOST:
        return liveness.lost(now, lease_seconds)
    return and_(Worker.state == state.value, liveness.alive(now, lease_seconds))


@dataclass
class QueueCounts:
    """One queue's jobs in the database, and the live workers that consume it."""

    queued: int = 0
    oldest_queued_at: datetime | None = None
    running: int = 0
    workers: int = 0


@dataclass
class FleetRows:
    """What the database says about the fleet; the broker's depths come separately."""

    workers: list[WorkerRead]
    hidden: int
    queues: dict[str, QueueCounts] = field(default_factory=dict)


def read_fleet(
    *,
    session: Session,
    now: datetime,
    lease_seconds: float,
    default_queue: str,
    states: set[WorkerState],
    show_all: bool,
    limit: int,
) -> FleetRows:
    """The workers to list (``states``, or every one with ``show_all``, or by default all
    but those that ended more than :data:`ENDED_SHOWN_FOR` ago), at most ``limit``, those
    alive most recently first; and every queue in use with its jobs and live workers.
    Jobs sent before their queue was recorded count as ``default_queue``'s."""
    where: list[ColumnElement[bool]] = []
    if states:
        where.append(or_(false(), *(_state_clause(s, now, lease_seconds) for s in states)))
    elif not show_all:
        where.append(func.coalesce(Worker.stopped_at, Worker.heartbeat_at) >= now - ENDED_SHOWN_FOR)
    rows = session.scalars(
        select(Worker).where(*where).order_by(Worker.heartbeat_at.desc(), Worker.id).limit(limit)
    ).all()
    total = session.scalar(select(func.count()).select_from(Worker)) or 0
    shown = [(row, derived_state(row, now=now, lease_seconds=lease_seconds)) for row in rows]
    shown.sort(key=lambda pair: _RANK[pair[1]])  # stable: most recent first within a state
    live = [row for row, state in shown if state in WorkerState.LIVE]
    jobs = _jobs(session, {job_id for row in live for job_id in row.running or []})
    held = _held(session, [row.id for row in live])
    workers = [
        _read(row, state, now=now, jobs=jobs, held=held.get(row.id, [])) for row, state in shown
    ]
    queues = _queues(session, now, lease_seconds, default_queue)
    return FleetRows(workers, hidden=total - len(workers), queues=queues)


def _jobs(session: Session, ids: set[str]) -> dict[str, WorkerJob]:
    if not ids:
        return {}
    query = (
        select(Job, User.name)
        .outerjoin(User, User.id == Job.owner_id)
        .where(Job.id.in_(sorted(ids)))
    )
    out = {}
    for job, owner in session.execute(query).all():
        out[job.id] = WorkerJob(
            id=job.id,
            name=job.name,
            kind=job.kind,
            status=job.status,
            epoch=job.epochs_completed,
            epochs=total_rows(job.spec),
            owner_id=job.owner_id,
            owner=owner,
            started_at=job.started_at,
        )
    return out


def _held(session: Session, worker_ids: Sequence[str]) -> dict[str, list[str]]:
    """Per worker, the queued jobs whose message it has received and not started."""
    if not worker_ids:
        return {}
    query = (
        select(Job.held_by, Job.id)
        .where(Job.status == JobStatus.QUEUED, Job.held_by.in_(worker_ids))
        .order_by(Job.held_at, Job.id)
    )
    out: dict[str, list[str]] = {}
    for holder, job_id in session.execute(query).all():
        if holder is not None:  # never null under the IN, but the column is nullable
            out.setdefault(holder, []).append(job_id)
    return out


def _read(
    row: Worker, state: WorkerState, *, now: datetime, jobs: dict[str, WorkerJob], held: list[str]
) -> WorkerRead:
    # A stopped or lost worker runs nothing: what its last heartbeat listed has ended or
    # been taken back by the reaper, and may be running elsewhere now.
    running = [jobs[i] for i in row.running or [] if i in jobs] if state in WorkerState.LIVE else []
    return WorkerRead(
        id=row.id,
        host=row.host,
        pid=row.pid,
        queue=row.queue,
        concurrency=row.concurrency,
        state=state,
        devices=[DeviceRead.model_validate(d) for d in row.devices or []],
        torch_version=row.torch_version,
        cuda_version=row.cuda_version,
        torch_threads=row.torch_threads,
        version=row.version,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        heartbeat_age_seconds=max(0.0, (now - row.heartbeat_at).total_seconds()),
        stopped_at=row.stopped_at,
        running=running,
        held=held,
    )


def _queues(
    session: Session, now: datetime, lease_seconds: float, default_queue: str
) -> dict[str, QueueCounts]:
    out: dict[str, QueueCounts] = {default_queue: QueueCounts()}
    # Grouped by the stored column (NULL included), not by COALESCE(queue, :default):
    # PostgreSQL cannot tell that the SELECT's and the GROUP BY's parameters are equal.
    jobs = (
        select(Job.queue, Job.status, func.count(), func.min(Job.created_at))
        .where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        .group_by(Job.queue, Job.status)
    )
    for queue, status, count, oldest in session.execute(jobs).all():
        counts = out.setdefault(queue or default_queue, QueueCounts())
        if status == JobStatus.RUNNING:
            counts.running += count
            continue
        counts.queued += count
        if oldest is not None and (
            counts.oldest_queued_at is None or oldest < counts.oldest_queued_at
        ):
            counts.oldest_queued_at = oldest
    alive = (
        select(Worker.queue, func.count())
        .where(liveness.alive(now, lease_seconds))
        .group_by(Worker.queue)
    )
    for queue, count in session.execute(alive).all():
        out.setdefault(queue, QueueCounts()).workers += count
    return out


# -- the broker -----------------------------------------------------------------------

_CREDENTIALS = re.compile(r"//[^/@\s]*@")


def broker_depths(producer: Producer, names: Sequence[str]) -> tuple[dict[str, int], str | None]:
    """Each queue's waiting messages, as the broker counts them, and why the broker could
    not be asked (None: it answered for every queue). Blocks: call it in a thread."""
    depths: dict[str, int] = {}
    for name in names:
        try:
            depths[name] = producer.queue_depth(name)
        except Exception as exc:  # the fleet view stays up whatever the broker does
            log.warning("fleet: the broker did not give queue %r's depth: %s", name, exc)
            # A broker URL in the message may carry a password: keep only its host.
            return depths, _CREDENTIALS.sub("//", f"{type(exc).__name__}: {exc}")
    return depths, None


def queue_names(rows: FleetRows, default_queue: str) -> list[str]:
    """The API's own queue first, then every other in use, by name."""
    names = set(rows.queues) | {w.queue for w in rows.workers}
    return [default_queue, *sorted(names - {default_queue})]


def assemble(
    rows: FleetRows,
    *,
    names: Sequence[str],
    depths: dict[str, int],
    broker_error: str | None,
    lease_seconds: float,
    now: datetime,
) -> FleetRead:
    queues = []
    for name in names:
        counts = rows.queues.get(name, QueueCounts())
        oldest = counts.oldest_queued_at
        queues.append(
            QueueRead(
                name=name,
                depth=depths.get(name),
                broker_error=None if name in depths else broker_error,
                queued=counts.queued,
                oldest_queued_at=oldest,
                oldest_queued_seconds=None
                if oldest is None
                else max(0.0, (now - oldest).total_seconds()),
                running=counts.running,
                workers=counts.workers,
            )
        )
    return FleetRead(
        workers=rows.workers,
        queues=queues,
        broker_reachable=broker_error is None,
        hidden=rows.hidden,
        lease_seconds=lease_seconds,
        now=now,
    )
