"""Leases: which attempt at a job may write, and how an attempt proves it is alive.

Celery with Redis delivers at least once and may run a task twice at the same time; the
embedded SQL broker never redelivers at all. Neither is a lock. The job row is: its
``attempt`` column names the one attempt allowed to write, and every write a worker makes
for a job (metrics, checkpoint, status) is a conditional update on that column. An
attempt whose lease was taken over — because its heartbeat went quiet for longer than
``lease_seconds`` — finds its next write refused, raises ``LeaseLost`` and stops.

The conditional ``UPDATE`` (``service.jobs.lifecycle.fence``, or ``record_outcome`` for
the attempt's last write) comes first in every fenced transaction. On PostgreSQL it
locks the row until commit and on SQLite it takes the write lock, so anything done inside
the transaction (renaming a checkpoint into place) happens while no other attempt can
take the lease.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from service.db import utcnow
from service.jobs import lifecycle
from service.jobs.models import Job
from service.jobs.states import JobStatus
from workers import metrics
from workers.engine.report import StopTraining

log = logging.getLogger(__name__)

T = TypeVar("T")


class LeaseLost(StopTraining):
    """Another attempt holds the job now (or it ended): this one must write nothing more."""


def retrying(fn: Callable[[], T], *, seconds: float, what: str) -> T:
    """Run ``fn`` (one short transaction), retrying while the database is unreachable.

    A worker in the middle of a long job should not lose it to a database restart or a
    failover: it waits, up to ``seconds``, and carries on when the database is back.
    Errors that are not about reaching the database are raised at once.
    """
    deadline = time.monotonic() + seconds
    delay = 0.25
    while True:
        try:
            return fn()
        except DBAPIError as exc:
            # OperationalError covers refused/closed connections and SQLite's "database
            # is locked"; an invalidated connection is a disconnect by definition.
            transient = exc.connection_invalidated or type(exc).__name__ in (
                "OperationalError",
                "InterfaceError",
            )
            if not transient or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: database unavailable (%s); retrying in %.1fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class Lease:
    """One attempt's hold on a job. A background thread renews it (``heartbeat_at``) and
    watches the row for a cancel request or a takeover, so the training loop learns of
    either by reading two flags — never by querying the database between batches."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: str,
        attempt: int,
        *,
        heartbeat_seconds: float,
        poll_seconds: float,
        retry_seconds: float,
    ) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.attempt = attempt
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = min(poll_seconds, heartbeat_seconds)
        self.retry_seconds = retry_seconds
        self.cancel_requested = False
        self.lost: str | None = None  # why the lease is gone, once it is
        self._stop = threading.Event()
        # Run in a copy of the caller's context: the heartbeat's log lines carry the job's
        # fields (service/logs.py) like the runner's.
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._run,),
            name=f"lease-{job_id[:8]}",
            daemon=True,
        )

    # -- the fence ---------------------------------------------------------------------

    @contextmanager
    def fenced(self, what: str, **values: object) -> Iterator[Session]:
        """A transaction that first updates the job row with ``values`` if and only if
        this attempt still holds it (status running), then lets the caller write more.
        Raises ``LeaseLost`` when the row says otherwise. Not retried: wrap the whole
        block with ``retrying``."""
        with self._holding(
            what,
            lambda s: lifecycle.fence(
                s, job_id=self.job_id, attempt=self.attempt, now=utcnow(), **values
            ),
        ) as s:
            yield s

    @contextmanager
    def finishing(self, status: JobStatus, **values: object) -> Iterator[Session]:
        """Like :meth:`fenced`, recording the job's outcome ``status`` (and ending this
        attempt's row): the last write of an attempt."""
        with self._holding(
            f"outcome {status}",
            lambda s: lifecycle.record_outcome(
                s, job_id=self.job_id, attempt=self.attempt, status=status, now=utcnow(), **values
            ),
        ) as s:
            yield s

    @contextmanager
    def _holding(self, what: str, first: Callable[[Session], bool]) -> Iterator[Session]:
        # ``first`` is the transaction's first statement: its row (or write) lock covers
        # everything the caller does before the commit.
        with self.sessions() as s, s.begin():
            if not first(s):
                self.lost = self.lost or self._why_lost(s)
                metrics.FENCED_REFUSED.inc()
                raise LeaseLost(f"{what} refused: {self.lost}")
            yield s

    def _why_lost(self, s: Session) -> str:
        row = s.execute(select(Job.attempt, Job.status).where(Job.id == self.job_id)).first()
        if row is None:
            return "the job was deleted"
        if row.attempt != self.attempt:
            return f"attempt {row.attempt} took over the job from attempt {self.attempt}"
        return f"the job is {row.status}"

    # -- the heartbeat -----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def check(self) -> bool:
        """For the training loop at each batch: True to stop (cancel requested); raises
        ``LeaseLost`` once another attempt holds the job."""
        if self.lost is not None:
            raise LeaseLost(self.lost)
        return self.cancel_requested

    def _run(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(self.poll_seconds):
            try:
                if time.monotonic() - last_beat >= self.heartbeat_seconds:
                    self._beat()
                    last_beat = time.monotonic()
                else:
                    self._look()
            except LeaseLost as exc:
                log.warning("job %s attempt %d: %s", self.job_id, self.attempt, exc)
                return
            except Exception as exc:  # the database is away: the next tick tries again
                log.warning("job %s: heartbeat failed: %s", self.job_id, exc)
            if self.lost is not None:
                return

    def _beat(self) -> None:
        with self.fenced("heartbeat") as s:
            self.cancel_requested = bool(
                s.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
            )

    def _look(self) -> None:
        with self.sessions() as s:
            row = s.execute(
                select(Job.attempt, Job.status, Job.cancel_requested).where(Job.id == self.job_id)
            ).first()
        if row is None or row.attempt != self.attempt or row.status != JobStatus.RUNNING:
            with self.sessions() as s:
                self.lost = self._why_lost(s)
            # This attempt recording the job's outcome ends its own lease: no news.
            ended_itself = row is not None and row.attempt == self.attempt
            log.log(
                logging.DEBUG if ended_itself else logging.WARNING,
                "job %s attempt %d: lease lost: %s",
                self.job_id,
                self.attempt,
                self.lost,
            )
            return
        self.cancel_requested = bool(row.cancel_requested)
