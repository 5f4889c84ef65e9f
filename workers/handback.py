"""The hand back of a stopping worker's attempt (workers/stopping.py says when): the job
queued again through ``lifecycle.hand_back`` and its message sent, so the next worker
resumes it at once; and messages the stopping worker still receives, passed on."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db import utcnow
from service.jobs import lifecycle
from service.jobs.models import Job
from service.jobs.states import JobStatus
from service.queue import Send
from workers.engine.report import StopTraining
from workers.lease import retrying

log = logging.getLogger(__name__)


class HandBack(StopTraining):
    """The worker is stopping: end this attempt and give the job back to the queue."""


def hand_back(
    sessions: sessionmaker[Session],
    *,
    job_id: str,
    attempt: int,
    send: Send,
    retry_seconds: float,
) -> JobStatus | None:
    """Give the job of ``attempt`` back to the queue (``lifecycle.hand_back``) and send its
    new message, so a worker resumes it at once. Returns the job's new status: queued,
    cancelled (a cancel came meanwhile), or None (another attempt holds it)."""
    # Stable while this attempt holds the job: only its own fenced writes move them.
    with sessions() as s:
        row = s.execute(
            select(Job.epochs_completed, Job.dispatch, Job.queue).where(Job.id == job_id)
        ).first()
    if row is None:
        return None
    epochs, dispatch, queue = row

    def write() -> JobStatus | None:
        with sessions() as s, s.begin():
            return lifecycle.hand_back(
                s, job_id=job_id, attempt=attempt, epochs_completed=epochs, now=utcnow()
            )

    status = retrying(write, seconds=retry_seconds, what=f"job {job_id} hand back")
    if status == JobStatus.QUEUED:
        try:
            send(job_id, dispatch + 1, queue)  # to the job's own queue
        except Exception:
            # The reaper sends it again after DESCENT_REDISPATCH_SECONDS.
            log.exception("job %s: handed back, but its message could not be sent", job_id)
        log.info(
            "job %s attempt %d: worker stopping; handed back after epoch %d",
            job_id,
            attempt,
            epochs,
        )
    return status


def pass_on(
    sessions: sessionmaker[Session], *, job_id: str, dispatch: int | None, send: Send
) -> None:
    """Send the message of ``job_id`` again as it came, for another worker (or this one's
    next start): a stopping worker's claim would only start an attempt to hand back."""
    with sessions() as s:
        row = s.execute(select(Job.dispatch, Job.queue).where(Job.id == job_id)).first()
    if row is None:
        return  # no such job
    # A message from before dispatch numbers stands for the current one.
    current, queue = row
    try:
        send(job_id, current if dispatch is None else dispatch, queue)
    except Exception:
        log.exception("job %s: could not pass its message on", job_id)
        return
    log.info("job %s: worker stopping; its message passed on", job_id)
