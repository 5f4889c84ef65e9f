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

Each outcome is a transition of ``service/jobs/lifecycle.py`` (``start_attempt``,
``take_over``, ``fail_lost``): a conditional update, so two workers racing for the same
job cannot both win.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import utcnow
from service.jobs import lifecycle
from service.jobs.models import Job
from service.jobs.states import JobStatus

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


def _expired_before(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(seconds=settings.lease_seconds)


def _expired(job: Job, settings: Settings, now: datetime) -> bool:
    return job.heartbeat_at is None or job.heartbeat_at < _expired_before(settings, now)


def end_lost(s: Session, job: Job, settings: Settings, now: datetime) -> JobStatus | None:
    """A running job whose lease expired and which must not resume (a cancel was asked,
    or it used up ``max_restarts``): end it. Returns its new status, or None when neither
    holds or another worker got there first. The caller commits."""
    return lifecycle.fail_lost(
        s,
        job_id=job.id,
        attempt=job.attempt,
        epochs_completed=job.epochs_completed,
        max_restarts=settings.max_restarts,
        now=now,
        expired_before=_expired_before(settings, now),
    )


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
            if job.status == JobStatus.QUEUED:
                if dispatch is not None and dispatch < job.dispatch:
                    log.info(
                        "job %s: leftover message (dispatch %s < %s)",
                        job_id,
                        dispatch,
                        job.dispatch,
                    )
                    return None
                # Read before updating: the values the attempt starts from.
                claimed = Claimed(job_id, job.attempt + 1, job.epochs_completed)
                started = lifecycle.start_attempt(
                    s, job_id=job_id, previous=job.attempt, worker=worker_name(), now=now
                )
                return claimed if started else None
            if job.status != JobStatus.RUNNING:
                log.info("job %s is %s; message dropped", job_id, job.status)
                return None
            if _expired(job, settings, now):
                status = end_lost(s, job, settings, now)
                if status is not None:
                    log.info("job %s: its worker was lost; job %s", job_id, status)
                    return None
                claimed = Claimed(job_id, job.attempt + 1, job.epochs_completed)
                taken = lifecycle.take_over(
                    s,
                    job_id=job_id,
                    previous=job.attempt,
                    worker=worker_name(),
                    max_restarts=settings.max_restarts,
                    now=now,
                    expired_before=_expired_before(settings, now),
                )
                if taken:
                    log.info("job %s: took over from lost attempt %d", job_id, job.attempt)
                return claimed if taken else None
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
