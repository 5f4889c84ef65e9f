"""Taking a job: the one decision every delivered message, redelivered copy and reaper
pass goes through.

A message names a job and the ``dispatch`` number the job had when the message was sent.
What a worker does with it depends only on the job row:

- ``queued`` and the message is current → start the next attempt;
- ``queued`` but the row has been dispatched again since → a leftover copy: drop it;
- ``running`` and its lease is alive → a duplicate: watch the heartbeat for up to one
  lease period and drop the message as soon as the heartbeat moves;
- ``running`` and its lease has expired (its worker was killed; Celery redelivered the
  message) → take over: the next attempt resumes from the checkpoint — unless the job
  was asked to cancel (it ends ``cancelled``) or has used up ``max_restarts`` (it ends
  ``failed``, saying so);
- anything else (ended, deleted) → drop.

Every change is a conditional update, so two workers racing for the same job cannot
both win.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import utcnow
from service.jobs.models import CANCELLED, FAILED, QUEUED, RUNNING, Job, JobAttempt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """The attempt this worker now runs, and what the job row said when it took it."""

    job_id: str
    attempt: int
    epochs_completed: int


def worker_name() -> str:
    """Host and pool process: which process runs an attempt, even with several per host."""
    return f"{socket.gethostname()}:{os.getpid()}"


def lost_reason(attempt: int, max_restarts: int, epoch: int) -> str:
    return (
        f"its worker was lost {attempt} time(s), more than max_restarts={max_restarts} "
        f"allows (last at epoch {epoch}); a worker killed for lack of memory is the "
        "usual cause: try a smaller model or batch size"
    )


def end_lost(
    s: Session, job: Job, settings: Settings, now: datetime, *, requeue: bool
) -> str | None:
    """A running job whose lease expired: cancel it, fail it, or (``requeue``) make it
    queued again with a new dispatch number. Returns the new status, or None when
    another worker got there first. The caller commits."""
    if job.cancel_requested:
        values: dict[str, object] = {
            "status": CANCELLED,
            "status_reason": f"cancelled by request after {job.epochs_completed} epoch(s) "
            "(its worker was lost)",
            "finished_at": now,
        }
    elif job.attempt > settings.max_restarts:
        values = {
            "status": FAILED,
            "status_reason": lost_reason(job.attempt, settings.max_restarts, job.epochs_completed),
            "finished_at": now,
        }
    elif requeue:
        values = {
            "status": QUEUED,
            "status_reason": f"waiting to resume: the worker of attempt {job.attempt} was lost "
            f"after epoch {job.epochs_completed}",
            "dispatch": Job.dispatch + 1,
            "dispatched_at": now,
        }
    else:
        return None
    attempt = job.attempt
    done = s.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == RUNNING, Job.attempt == attempt)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not done:
        return None
    s.execute(
        update(JobAttempt)
        .where(JobAttempt.job_id == job.id, JobAttempt.attempt == attempt)
        .values(ended_at=now, outcome="lost")
    )
    return str(values["status"])


def _expired(job: Job, settings: Settings, now: datetime) -> bool:
    return job.heartbeat_at is None or job.heartbeat_at < now - timedelta(
        seconds=settings.lease_seconds
    )


def _start_attempt(s: Session, job: Job, from_status: str, now: datetime) -> Claimed | None:
    # Read before updating: the ORM update refreshes ``job`` in the session.
    previous, epochs = job.attempt, job.epochs_completed
    done = s.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == from_status, Job.attempt == previous)
        .values(
            status=RUNNING,
            attempt=previous + 1,
            heartbeat_at=now,
            started_at=job.started_at or now,
            worker=worker_name(),
            status_reason=None,
        )
    ).rowcount
    if not done:
        return None
    if from_status == RUNNING:  # a takeover: the previous attempt is gone
        s.execute(
            update(JobAttempt)
            .where(JobAttempt.job_id == job.id, JobAttempt.attempt == previous)
            .values(ended_at=now, outcome="lost")
        )
    s.add(
        JobAttempt(
            job_id=job.id,
            attempt=previous + 1,
            worker=worker_name(),
            resumed_from_epoch=0,
            started_at=now,
        )
    )
    return Claimed(job.id, previous + 1, epochs)


def claim(
    sessions: sessionmaker[Session], settings: Settings, job_id: str, dispatch: int | None
) -> Claimed | None:
    """Take the job for a new attempt, or decide the message has nothing to do."""
    watched: tuple[int, datetime | None] | None = None
    give_up = time.monotonic() + settings.lease_seconds + 2 * settings.heartbeat_seconds
    while True:
        with sessions() as s, s.begin():
            job = s.get(Job, job_id)
            now = utcnow()
            if job is None:
                log.info("job %s: no such job; message dropped", job_id)
                return None
            if job.status == QUEUED:
                if dispatch is not None and dispatch < job.dispatch:
                    log.info(
                        "job %s: leftover message (dispatch %s < %s)",
                        job_id,
                        dispatch,
                        job.dispatch,
                    )
                    return None
                return _start_attempt(s, job, QUEUED, now)
            if job.status != RUNNING:
                log.info("job %s is %s; message dropped", job_id, job.status)
                return None
            if _expired(job, settings, now):
                if job.cancel_requested or job.attempt > settings.max_restarts:
                    status = end_lost(s, job, settings, now, requeue=False)
                    log.info("job %s: its worker was lost; job %s", job_id, status)
                    return None
                log.info("job %s: taking over from lost attempt %d", job_id, job.attempt)
                return _start_attempt(s, job, RUNNING, now)
            seen = (job.attempt, job.heartbeat_at)
        # A live attempt holds the lease. If its heartbeat moves, it is alive: this message
        # is a duplicate. If it stays still past the lease, its worker is gone.
        if watched is not None and seen != watched:
            log.info(
                "job %s is held by live attempt %d; duplicate message dropped", job_id, seen[0]
            )
            return None
        if time.monotonic() > give_up:
            log.info("job %s: lease neither renewed nor expired in time; dropped", job_id)
            return None
        watched = seen
        time.sleep(settings.heartbeat_seconds / 2)
