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
- re-sends at once (a new dispatch number) every ``queued`` job whose message is lost:
  the worker that received it (``jobs.held_by``, workers/fleet.py) was lost or stopped
  before its pool started the job; or the broker restarted (Redis's ``run_id`` changed
  between two passes: a restart without persistence loses every queued message); or the
  job's queue is empty while the job, held by no live worker, was last sent more than
  ``lease_seconds`` ago. A stranded job is so re-sent within one lease period plus a
  pass (docs/reliability.md);
- as the last resort, sends again every job ``queued`` for longer than
  ``redispatch_seconds`` since its last message. A copy that was not lost is dropped by
  the worker that receives it (its dispatch number is old).

Every message goes to the job's own queue (``jobs.queue``; the reaper's for rows from
before queues were recorded), so a recovered job stays in its pool.

Several reapers may run at once (one per worker): every change is a transition of
service/jobs/lifecycle.py (``fail_lost``, ``requeue_lost``, ``resend``, ``redispatch``), a
conditional update, so each job is recovered once. After the database has been
unreachable the reaper waits one lease period before judging leases, so live workers have
time to renew theirs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from service import logs
from service.config import Settings
from service.db import utcnow
from service.fleet.liveness import alive, fresh_since
from service.fleet.models import Worker
from service.jobs import lifecycle
from service.jobs.models import Job
from service.jobs.states import JobStatus
from service.live import Notifier
from service.queue import Send, broker_instance, queue_depth
from service.sweeps import driver as sweeps
from workers.claim import end_lost
from workers.metrics import reaped

log = logging.getLogger(__name__)


class BrokerWatch:
    """What the reaper learns of the broker from pass to pass: whether it restarted (its
    instance changed) and how many messages a queue holds."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._instance: str | None = None

    def restarted(self) -> bool:
        """Whether the broker is another instance than at the last call (False the first
        time, and for the SQL broker, whose messages outlive any process). Raises when
        the broker cannot be reached; the instance seen before is kept until it can."""
        instance = broker_instance(self.app)
        before, self._instance = self._instance, instance
        return before is not None and instance != before

    def depth(self, queue: str) -> int:
        return queue_depth(self.app, queue)


def _holder_gone(now: datetime, settings: Settings) -> ColumnElement[bool]:
    """A job's holder is gone: no row, stopped, silent for a lease, or restarted since it
    received the message (same host and pid, a new start)."""
    return or_(
        Worker.id.is_(None),
        ~alive(now, settings.lease_seconds),
        Job.held_at < Worker.started_at,
    )


def _lost_messages(
    sessions: sessionmaker[Session], settings: Settings, broker: BrokerWatch | None, now: datetime
) -> list[tuple[str, int, str | None, str | None, str]]:
    """Queued jobs whose message is lost: (id, dispatch, queue, held_by, why)."""
    held = (
        select(Job.id, Job.dispatch, Job.queue, Job.held_by)
        .outerjoin(Worker, Worker.id == Job.held_by)
        .where(Job.status == JobStatus.QUEUED, Job.held_by.is_not(None))
    )
    with sessions() as s:
        gone = s.execute(
            held.where(_holder_gone(now, settings)).order_by(Job.created_at, Job.id)
        ).all()
    out = [(j, d, q, h, f"the worker {h} holding its message is gone") for j, d, q, h in gone]
    if broker is None:
        return out
    try:
        restarted = broker.restarted()
    except Exception as exc:
        log.warning("reaper: broker unavailable: %s", exc)
        return out
    # Sent before now, in a restart; else long enough ago to have been received.
    cutoff = now if restarted else fresh_since(now, settings.lease_seconds)
    own = func.coalesce(Job.queue, settings.queue)
    unheld = [Job.status == JobStatus.QUEUED, Job.held_by.is_(None), Job.dispatched_at < cutoff]
    with sessions() as s:
        queues = s.scalars(select(own).where(*unheld).distinct()).all()
    if restarted:
        empty, why = list(queues), "the broker restarted"
    else:
        # A long backlog is only read when its queue is empty: one query per queue first.
        empty = [q for q in queues if _depth(broker, q) == 0]
        why = "its queue is empty"
    if not empty:
        return out
    with sessions() as s:
        rows = s.execute(
            select(Job.id, Job.dispatch, Job.queue)
            .where(*unheld, own.in_(empty))
            .order_by(Job.created_at, Job.id)
        ).all()
    if restarted:
        log.warning("reaper: the broker restarted; re-sending %d queued job(s)", len(rows))
    return out + [(job_id, dispatch, queue, None, why) for job_id, dispatch, queue in rows]


def _depth(broker: BrokerWatch, queue: str) -> int | None:
    try:
        return broker.depth(queue)
    except Exception as exc:
        log.warning("reaper: could not read the depth of queue %s: %s", queue, exc)
        return None


def reap_once(
    sessions: sessionmaker[Session],
    settings: Settings,
    send: Send,
    notify: Callable[[str], None] = lambda _job_id: None,
    broker: BrokerWatch | None = None,
) -> dict[str, int]:
    """One pass. Returns how many jobs were requeued, failed, cancelled, re-sent (their
    message lost) and redispatched (``redispatch_seconds``). ``notify`` is told of each
    job whose status it changed (after the commit). Without ``broker`` it cannot tell a
    broker's restart or an empty queue, and re-sends only for gone holders."""
    counts = {"requeued": 0, "failed": 0, "cancelled": 0, "resent": 0, "redispatched": 0}
    now = utcnow()
    to_send: list[tuple[str, int, str | None]] = []
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
                to_send.append((job.id, job.dispatch + 1, job.queue))
        if status is not None:
            notify(job.id)
            counts["requeued" if status == JobStatus.QUEUED else status] += 1
            with logs.bound(job_id=job.id, attempt=job.attempt):
                log.warning(
                    "job %s: worker of attempt %d lost after epoch %d; job %s",
                    job.id,
                    job.attempt,
                    job.epochs_completed,
                    "requeued to resume" if status == JobStatus.QUEUED else status,
                )

    # Oldest first: re-sent messages keep the jobs' order in the queue.
    for job_id, dispatch, queue, held_by, why in _lost_messages(sessions, settings, broker, now):
        with sessions() as s, s.begin():
            done = lifecycle.resend(s, job_id=job_id, dispatch=dispatch, held_by=held_by, now=now)
        if done:
            to_send.append((job_id, dispatch + 1, queue))
            counts["resent"] += 1
            with logs.bound(job_id=job_id, dispatch=dispatch + 1):
                log.warning("job %s: its message is lost (%s); sent again", job_id, why)

    stale = now - timedelta(seconds=settings.redispatch_seconds)
    with sessions() as s:
        waiting = s.execute(
            select(Job.id, Job.dispatch, Job.queue)
            .where(Job.status == JobStatus.QUEUED, Job.dispatched_at < stale)
            .order_by(Job.created_at, Job.id)
        ).all()
    for job_id, dispatch, queue in waiting:
        with sessions() as s, s.begin():
            done = lifecycle.redispatch(
                s, job_id=job_id, dispatch=dispatch, now=now, stale_before=stale
            )
        if done:
            to_send.append((job_id, dispatch + 1, queue))
            counts["redispatched"] += 1

    for job_id, dispatch, queue in to_send:
        try:
            send(job_id, dispatch, queue)
        except Exception as exc:
            # The job stays queued; the redispatch pass sends it once the broker is back.
            with logs.bound(job_id=job_id, dispatch=dispatch):
                log.warning("job %s: could not send its message: %s", job_id, exc)
    return counts


class Reaper:
    """Runs ``reap_once`` every ``settings.reaper_seconds`` in a daemon thread; ``broker``
    (the worker's Celery app) lets it notice a broker's restart and an empty queue."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        send: Send,
        broker: Celery | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.send = send
        self.broker = BrokerWatch(broker) if broker is not None else None
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
                    reap_once(
                        self.sessions,
                        self.settings,
                        self.send,
                        self.notifier.job_changed,
                        self.broker,
                    )
                )
            except Exception as exc:
                failed_at = time.monotonic()
                log.warning("reaper: database unavailable: %s", exc)
