"""Run one training job: claim its row, train, write metrics and the outcome to SQL.

Every write is a short transaction of its own, so the API (and, on SQLite, the other
processes sharing the file) are never blocked for long.
"""

from __future__ import annotations

import logging
import socket
import time
from functools import lru_cache

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import make_engine, make_sessionmaker, session_scope, utcnow
from service.jobs.models import (
    CANCELLED,
    DIVERGED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    EpochMetric,
    Job,
)
from service.spec import JobSpec
from workers.engine import train

log = logging.getLogger(__name__)


@lru_cache
def _sessions(database_url: str) -> sessionmaker[Session]:
    # One engine per process, created after the pool forks.
    return make_sessionmaker(make_engine(database_url))


class SqlReporter:
    """The engine's Reporter: each epoch's metrics become one row, written before the next
    epoch starts; cancel requests are read at most every ``poll_seconds``."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str, poll_seconds: float) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.poll_seconds = poll_seconds
        self._checked_at = 0.0
        self._stop = False

    def report(self, epoch: int, metrics: dict[str, float]) -> None:
        try:
            with session_scope(self.sessions) as s:
                s.add(EpochMetric(job_id=self.job_id, epoch=epoch, values=metrics))
                s.execute(
                    update(Job)
                    .where(Job.id == self.job_id, Job.status == RUNNING)
                    .values(epochs_completed=epoch)
                )
        except IntegrityError:
            # The (job, epoch) key already holds this epoch: never write it twice.
            log.warning("job %s: epoch %d was already recorded", self.job_id, epoch)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._checked_at >= self.poll_seconds:
            self._checked_at = now
            with session_scope(self.sessions) as s:
                self._stop = bool(
                    s.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
                )
        return self._stop


def _finish(sessions: sessionmaker[Session], job_id: str, status: str, **values: object) -> None:
    with session_scope(sessions) as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == RUNNING)
            .values(status=status, finished_at=utcnow(), **values)
        )


def run_job(job_id: str, *, settings: Settings) -> None:
    sessions = _sessions(str(settings.database_url))
    with session_scope(sessions) as s:
        claimed = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == QUEUED)
            .values(status=RUNNING, started_at=utcnow(), worker=socket.gethostname())
        ).rowcount
        job = s.get(Job, job_id)
    if not claimed:
        # Cancelled before it started, unknown, or already taken: nothing to do.
        log.info("job %s not started: status is %s", job_id, job.status if job else "missing")
        return
    assert job is not None

    log.info("job %s: training %s", job_id, job.name)
    try:
        spec = JobSpec.model_validate(job.spec)
        model_path = settings.jobs_dir / job_id / "model.pt"
        result = train(
            spec,
            reporter=SqlReporter(sessions, job_id, settings.cancel_poll_seconds),
            datasets_dir=settings.datasets_dir,
            model_path=model_path,
        )
    except Exception as exc:
        log.exception("job %s failed", job_id)
        _finish(sessions, job_id, FAILED, status_reason=f"{type(exc).__name__}: {exc}")
        return

    status = {"succeeded": SUCCEEDED, "diverged": DIVERGED, "cancelled": CANCELLED}[result.status]
    _finish(
        sessions,
        job_id,
        status,
        status_reason=result.reason,
        epochs_completed=result.epochs_completed,
        stop_epoch=result.stop_epoch,
        best_epoch=result.best_epoch,
        best_value=result.best_value,
        final_metrics=result.final_metrics or None,
        device=result.device,
        has_model=status == SUCCEEDED and model_path.is_file(),
    )
    log.info("job %s %s after %d epochs", job_id, status, result.epochs_completed)
