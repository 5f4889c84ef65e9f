"""``GET /v1/jobs/{id}/events``: a job's epochs and status changes as server-sent events.

The contract (docs/events.md):

- ``event: status`` first, when the stream opens — whatever the job's status, an ended
  job's too — and then whenever the job's status or attempt changes (a new attempt means
  a lost worker was replaced and the job resumed);
- ``event: epoch`` once per recorded epoch, in order, with ``id:`` = the epoch;
- ``event: end`` once the job has ended — after every epoch it recorded — and then the
  stream closes;
- every event carries ``id:`` = the last epoch sent so far, so a client reconnecting with
  ``Last-Event-ID`` (or ``?after=``) gets exactly the epochs it missed, then live ones;
- a comment (``: keep-alive``) on a quiet stream every ``DESCENT_EVENTS_HEARTBEAT_SECONDS``.

How: :class:`JobFeed` is what is particular to a job's stream — read the job row, then
the epochs after the cursor; turn them into events — and :func:`service.streams.follow`
runs it, woken by the process's :class:`~service.streams.EventHub` (which polls
:func:`versions` of every watched job in one query, and with Redis hears the workers'
notifications at once).

Reading the job row before the epochs is what makes the end exact: a job is marked ended
only after its last epoch was committed, so epochs read after an ended row are all of
them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from service.db import utcnow
from service.jobs.models import EpochMetric, Job
from service.jobs.states import JobStatus
from service.streams import Event, Feed, Step, iso

__all__ = [
    "OWNER_SOURCE",
    "SOURCE",
    "JobFeed",
    "JobState",
    "OwnerFeed",
    "Snapshot",
    "owner_versions",
    "read_snapshot",
    "versions",
]

#: The hub's name for job keys.
SOURCE = "job"
#: The hub's name for owner keys (a user id: "one of my jobs changed").
OWNER_SOURCE = "owner"


@dataclass(frozen=True)
class JobState:
    status: str
    status_reason: str | None
    attempt: int
    epochs_completed: int
    stop_epoch: int | None
    best_epoch: int | None
    best_value: float | None
    final_metrics: dict[str, float] | None
    saved_epoch: int | None
    saved_metrics: dict[str, float | None] | None
    best_metrics: dict[str, float | None] | None


@dataclass(frozen=True)
class Snapshot:
    job: JobState | None  # None: the job was deleted
    epochs: list[tuple[int, dict[str, Any], datetime]]
    more: bool  # a full batch of epochs was read: there may be more after them


def read_snapshot(
    sessions: sessionmaker[Session], job_id: str, *, after: int, limit: int
) -> Snapshot:
    """The job row, then up to ``limit`` epochs after ``after`` — in that order."""
    with sessions() as s:
        row = s.execute(
            select(
                Job.status,
                Job.status_reason,
                Job.attempt,
                Job.epochs_completed,
                Job.stop_epoch,
                Job.best_epoch,
                Job.best_value,
                Job.final_metrics,
                Job.saved_epoch,
                Job.saved_metrics,
                Job.best_metrics,
            ).where(Job.id == job_id)
        ).one_or_none()
        if row is None:
            return Snapshot(None, [], False)
        epochs = s.execute(
            select(EpochMetric.epoch, EpochMetric.values, EpochMetric.recorded_at)
            .where(EpochMetric.job_id == job_id, EpochMetric.epoch > after)
            .order_by(EpochMetric.epoch)
            .limit(limit)
        ).all()
    return Snapshot(
        JobState(*row), [(e, dict(v or {}), at) for e, v, at in epochs], len(epochs) >= limit
    )


def versions(sessions: sessionmaker[Session], job_ids: list[str]) -> dict[str, tuple]:
    """The hub's version of each job: it changes with its status, attempt and epochs."""
    with sessions() as s:
        rows = s.execute(
            select(Job.id, Job.status, Job.attempt, Job.epochs_completed).where(Job.id.in_(job_ids))
        ).all()
    return {r[0]: tuple(r[1:]) for r in rows}


class JobFeed(Feed[Snapshot]):
    """The stream of job ``job_id``, which asked for ``epochs`` epochs (or rows)."""

    source = SOURCE

    def __init__(self, job_id: str, *, epochs: int) -> None:
        self.key = job_id
        self.epochs = epochs
        self.shown: tuple[str, int] | None = None  # the (status, attempt) last sent

    def read(self, sessions: sessionmaker[Session], *, after: int, limit: int) -> Snapshot:
        return read_snapshot(sessions, self.key, after=after, limit=limit)

    def render(self, snap: Snapshot) -> Step | None:
        job = snap.job
        if job is None:
            return None
        events: list[Event] = []
        state = (job.status, job.attempt)
        ended = job.status in JobStatus.TERMINAL
        # The status first on connecting, an ended job's too. Later a change of status
        # goes before the epochs read with it, an end after them: the stream reads
        # queued → running → epochs … → succeeded → end.
        if self.shown is None or (state != self.shown and not ended):
            events.append(self._status_event(job))
        for epoch, values, recorded_at in snap.epochs:
            data = {
                "job_id": self.key,
                "epoch": epoch,
                "epochs": self.epochs,
                "metrics": values,
                "recorded_at": iso(recorded_at),
            }
            events.append(Event("epoch", data, advance=epoch))
        if not ended or snap.more:
            return Step(events, more=snap.more)
        if state != self.shown:
            events.append(self._status_event(job))
        events.append(Event("end", self._end(job)))
        return Step(events, ended=True)

    def _status_event(self, job: JobState) -> Event:
        self.shown = (job.status, job.attempt)
        return Event("status", self._status(job))

    def _status(self, job: JobState) -> dict[str, Any]:
        return {
            "job_id": self.key,
            "status": job.status,
            "status_reason": job.status_reason,
            "attempt": job.attempt,
            "epochs_completed": job.epochs_completed,
            "epochs": self.epochs,
        }

    def _end(self, job: JobState) -> dict[str, Any]:
        return {
            **self._status(job),
            "stop_epoch": job.stop_epoch,
            "best_epoch": job.best_epoch,
            "best_value": job.best_value,
            "final_metrics": job.final_metrics,
            "saved_epoch": job.saved_epoch,
            "saved_metrics": job.saved_metrics,
            "best_metrics": job.best_metrics,
        }


# -- GET /v1/jobs/events: one user's jobs as they change --------------------------------

#: Jobs ended this long before a stream opened are sent too: a page that listed one as
#: running just before opening its stream learns how it ended.
OWNER_LOOKBACK = timedelta(minutes=5)
#: Most jobs one read of an owner's stream looks at (its active ones first).
OWNER_ROWS = 500


def owner_versions(sessions: sessionmaker[Session], owner_ids: list[str]) -> dict[str, tuple]:
    """The hub's version of each owner: it changes when one of their jobs is created,
    starts, records an epoch, resumes, is asked to stop or ends."""
    with sessions() as s:
        rows = s.execute(
            select(
                Job.owner_id,
                func.count(),
                func.count(Job.started_at),
                func.count(Job.finished_at),
                func.coalesce(func.sum(Job.epochs_completed), 0),
                func.coalesce(func.sum(Job.attempt), 0),
                func.count().filter(Job.cancel_requested.is_(True)),
            )
            .where(Job.owner_id.in_(owner_ids))
            .group_by(Job.owner_id)
        ).all()
    return {str(r[0]): tuple(r[1:]) for r in rows}


class OwnerFeed(Feed[list[Job]]):
    """The stream of one user's jobs: ``event: job`` with the job (as ``present`` shows
    it) for each active one when the stream opens, and again whenever one is created or
    changes status, attempt, epoch count or stop request. It never ends by itself."""

    source = OWNER_SOURCE

    def __init__(self, owner_id: str, *, present: Callable[[Job], dict[str, Any]]) -> None:
        self.key = owner_id
        self.present = present
        self.since = utcnow() - OWNER_LOOKBACK
        self.sent: dict[str, tuple[Any, ...]] = {}
        self.active: list[str] = []

    def read(self, sessions: sessionmaker[Session], *, after: int, limit: int) -> list[Job]:
        with sessions() as s:
            return list(
                s.scalars(
                    select(Job)
                    .where(
                        Job.owner_id == self.key,
                        or_(
                            Job.status.in_(list(JobStatus.ACTIVE)),
                            Job.finished_at >= self.since,
                            Job.created_at >= self.since,
                        ),
                    )
                    .order_by(Job.created_at.desc())
                    .limit(OWNER_ROWS)
                )
            )

    def render(self, snap: list[Job]) -> Step:
        events = []
        for job in reversed(snap):  # oldest first, as they happened
            state = (job.status, job.attempt, job.epochs_completed, job.cancel_requested)
            if self.sent.get(job.id) != state:
                self.sent[job.id] = state
                events.append(Event("job", self.present(job)))
        self.active = [j.id for j in snap if j.status in JobStatus.ACTIVE]
        return Step(events)

    def notified_by(self) -> Collection[tuple[str, str]]:
        # With Redis, a worker's notification about one of these jobs wakes the stream
        # at once; the poll of the owner's version covers the rest.
        return [(SOURCE, job_id) for job_id in self.active[:100]]
