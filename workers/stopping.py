"""A worker's graceful stop: on SIGTERM each running attempt ends at a batch boundary and
hands its job back to the queue, and the next worker resumes it at once from its last
checkpoint instead of waiting out the lease (``DESCENT_LEASE_SECONDS``).

How the signal reaches the training loop: Celery's warm shutdown (SIGTERM or Ctrl-C to a
worker's main process) stops taking messages and waits for the running tasks however
long they take, and sends its pool processes nothing. So the main process, in its
``worker_shutting_down`` handler (workers/app.py), raises a flag it shares with its pool
processes — one byte of an anonymous shared mapping, made when this module is imported,
which is before the pool forks — and the runner's reporter reads it at every batch
boundary, where it already reads the cancel flag: a memory read, no system call. The
main process also arms a bound: after ``DESCENT_WORKER_STOP_SECONDS`` it turns the warm
shutdown into Celery's cold one (SIGQUIT), which ends the tasks still running; their jobs
then resume the old way, once their lease expires.

Where an attempt stops (``GracefulStop``): checkpoints exist only at epoch ends, and only
they resume exactly. So an epoch expected to end within ``finish_seconds`` is finished,
recorded and then the job handed back; otherwise the attempt stops at once and the partial
epoch is discarded — the next attempt runs it again from the last checkpoint, exactly as
an uninterrupted run would have. The lab's kinds (range test, landscape) keep no
checkpoints and start over whatever happens, so they stop at once.
"""

from __future__ import annotations

import logging
import mmap
import time
from collections.abc import Callable

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

# MAP_SHARED and anonymous: the pool processes forked after this import see the byte the
# main process writes (a module global would be each process's own copy).
_FLAG = mmap.mmap(-1, 1)


def set_worker_stopping() -> None:
    """Ask every attempt of this worker (its pool processes) to hand its job back."""
    _FLAG[0] = 1


def worker_stopping() -> bool:
    return _FLAG[0] == 1


def clear_worker_stopping() -> None:
    """For tests that run attempts in their own process."""
    _FLAG[0] = 0


class HandBack(StopTraining):
    """The worker is stopping: end this attempt and give the job back to the queue."""


class GracefulStop:
    """Decides, once the worker is stopping, where its attempt ends: at this batch
    boundary (``now``) or after recording the epoch in progress (``after_epoch``)."""

    def __init__(
        self,
        finish_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        stopping: Callable[[], bool] = worker_stopping,
    ) -> None:
        self.finish_seconds = finish_seconds
        self.clock = clock
        self.stopping = stopping
        self.epoch_started = clock()
        self.last_epoch_seconds: float | None = None  # unknown until an epoch is recorded
        self.seen_at: float | None = None

    def epoch_recorded(self) -> None:
        """An epoch (with its checkpoint) is recorded: the next one starts now."""
        now = self.clock()
        self.last_epoch_seconds = now - self.epoch_started
        self.epoch_started = now

    def now(self) -> bool:
        """At a batch boundary: hand back now? Not while the epoch in progress should end
        within ``finish_seconds`` of the stop (by the last epoch's length), nor past
        that however wrong the guess was."""
        if not self.stopping():
            return False
        now = self.clock()
        if self.seen_at is None:
            self.seen_at = now
        if self.last_epoch_seconds is None:
            return True
        expected_end = self.epoch_started + self.last_epoch_seconds
        waited = now - self.seen_at
        return expected_end - self.seen_at > self.finish_seconds or waited > self.finish_seconds

    def after_epoch(self) -> bool:
        """An epoch was just recorded: hand back before the next one?"""
        return self.stopping()


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
        row = s.execute(select(Job.epochs_completed, Job.dispatch).where(Job.id == job_id)).first()
    if row is None:
        return None
    epochs, dispatch = row

    def write() -> JobStatus | None:
        with sessions() as s, s.begin():
            return lifecycle.hand_back(
                s, job_id=job_id, attempt=attempt, epochs_completed=epochs, now=utcnow()
            )

    status = retrying(write, seconds=retry_seconds, what=f"job {job_id} hand back")
    if status == JobStatus.QUEUED:
        try:
            send(job_id, dispatch + 1)
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
    if dispatch is None:  # a message from before dispatch numbers: the current one
        with sessions() as s:
            dispatch = s.scalar(select(Job.dispatch).where(Job.id == job_id))
        if dispatch is None:
            return  # no such job
    try:
        send(job_id, dispatch)
    except Exception:
        log.exception("job %s: could not pass its message on", job_id)
        return
    log.info("job %s: worker stopping; its message passed on", job_id)
