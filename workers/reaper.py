"""The reaper: recovers jobs whose worker is gone and messages the broker lost.

Each worker's main process runs one in a thread. Every ``sweep_poll_seconds`` it advances
the running sweeps (service/sweeps/driver.py: new sweeps get their first trials, a sweep
whose trial ended without its worker advancing it carries on). Every ``reaper_seconds`` it:

- takes every ``running`` job whose lease expired (no heartbeat for ``lease_seconds``:
  its worker was killed, its host died) and ends it as ``cancelled`` if a cancel was
  asked, as ``failed`` if it has used up ``max_restarts``, and otherwise makes it
  ``queued`` again with a new dispatch number and sends a message — the next attempt
  resumes from its checkpoint. This is what recovers jobs on the embedded SQL broker,
  which never redelivers a message whose worker died, and on Redis whatever its
  visibility timeout;
- sends again every job ``queued`` for longer than ``redispatch_seconds`` since its last
  message, in case the broker lost it (a Redis restart without persistence). A copy that
  was not lost is dropped by the worker that receives it (its dispatch number is old).

Several reapers may run at once (one per worker): every change is a transition of
service/jobs/lifecycle.py (``fail_lost``, ``requeue_lost``, ``redispatch``), a
conditional update, so each job is recovered once. After the database has been
unreachable the reaper waits one lease period before judging leases, so live workers have
time to renew theirs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import utcnow
from service.jobs import lifecycle
from service.jobs.models import Job
from service.jobs.states import JobStatus
from service.live import Notifier
from service.queue import Send
from service.sweeps import driver as sweeps
from workers.claim import end_lost
from workers.metrics import reaped

log = logging.getLogger(__name__)


def reap_once(
    sessions: sessionmaker[Session],
    settings: Settings,
    send: Send,
    notify: Callable[[str], None] = lambda _job_id: None,
) -> dict[str, int]:
    """One pass. Returns how many jobs were requeued, failed, cancelled and redispatched.
    ``notify`` is told of each job whose status it changed (after the commit)."""
    counts = {"requeued": 0, "failed": 0, "cancelled": 0, "redispatched": 0}
    now = utcnow()
    to_send: list[tuple[str, int]] = []
    with sessions() as s:
        expired = s.scalars(
            select(Job).where(
                Job.status == JobStatus.RUNNING,
                Job.heartbeat_at < now - timedelta(seconds=settings.lease_seconds),
            )
        ).all()
    expired_before = now - timedelta(seconds=settings.lease_seconds)
    for job in expired:
        with sessions() as s, s.begin():
            status = end_lost(s, job, settings, now)
            if status is None and lifecycle.requeue_lost(
                s,
                job_id=job.id,
                attempt=job.attempt,
                epochs_completed=job.epochs_completed,
                max_restarts=settings.max_restarts,
                now=now,
                expired_before=expired_before,
            ):
                status = JobStatus.QUEUED
                to_send.append((job.id, job.dispatch + 1))
        if status is not None:
            notify(job.id)
            counts["requeued" if status == JobStatus.QUEUED else status] += 1
            log.warning(
                "job %s: worker of attempt %d lost after epoch %d; job %s",
                job.id,
                job.attempt,
                job.epochs_completed,
                "requeued to resume" if status == JobStatus.QUEUED else status,
            )

    stale = now - timedelta(seconds=settings.redispatch_seconds)
    with sessions() as s:
        # Oldest first: re-sent messages keep the jobs' order in the queue.
        waiting = s.execute(
            select(Job.id, Job.dispatch)
            .where(Job.status == JobStatus.QUEUED, Job.dispatched_at < stale)
            .order_by(Job.created_at, Job.id)
        ).all()
    for job_id, dispatch in waiting:
        with sessions() as s, s.begin():
            done = lifecycle.redispatch(
                s, job_id=job_id, dispatch=dispatch, now=now, stale_before=stale
            )
        if done:
            to_send.append((job_id, dispatch + 1))
            counts["redispatched"] += 1

    for job_id, dispatch in to_send:
        try:
            send(job_id, dispatch)
        except Exception as exc:
            # The job stays queued; the redispatch pass sends it once the broker is back.
            log.warning("job %s: could not send its message: %s", job_id, exc)
    return counts


class Reaper:
    """Runs ``reap_once`` every ``settings.reaper_seconds`` in a daemon thread."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings, send: Send) -> None:
        self.sessions = sessions
        self.settings = settings
        self.send = send
        self.notifier = Notifier(settings.redis_url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="descent-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        failed_at: float | None = None  # when the database last failed us
        interval = min(self.settings.reaper_seconds, self.settings.sweep_poll_seconds)
        reaped_at = time.monotonic()
        while not self._stop.wait(interval):
            try:
                # Sweeps: start trials of new sweeps, carry on sweeps whose driver died.
                sweeps.tick(
                    self.sessions,
                    self.settings,
                    self.send,
                    self.notifier.job_changed,
                    self.notifier.job_changed,  # sweep streams listen on the sweep's id
                )
            except Exception as exc:
                log.warning("reaper: could not advance sweeps: %s", exc)
            if time.monotonic() - reaped_at < self.settings.reaper_seconds:
                continue
            reaped_at = time.monotonic()
            try:
                if (
                    failed_at is not None
                    and time.monotonic() - failed_at < self.settings.lease_seconds
                ):
                    # In or just after an outage no worker could renew its lease: judge
                    # none until they have had a whole lease period to do so.
                    with self.sessions() as s:
                        s.execute(select(1))
                    continue
                reaped(
                    reap_once(self.sessions, self.settings, self.send, self.notifier.job_changed)
                )
            except Exception as exc:
                failed_at = time.monotonic()
                log.warning("reaper: database unavailable: %s", exc)
