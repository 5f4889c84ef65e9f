"""Jobs with recorded epochs, made without a worker: submitted through the API, then
given epochs and a status in SQL as a worker would leave them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from support import Backend

from service.db import make_engine, make_sessionmaker, session_scope, utcnow
from service.jobs.models import EpochMetric, Job

Record = Callable[..., None]


@pytest.fixture
def record(sqlite_backend: Backend) -> Iterator[Record]:
    """``record(job_id, epochs, status=..., best_epoch=...)``: ``epochs`` are the metric
    dicts of epochs 1, 2, …"""
    engine = make_engine(str(sqlite_backend.settings().database_url))

    def write(
        job_id: str,
        epochs: Sequence[dict[str, Any]],
        *,
        status: str = "succeeded",
        best_epoch: int | None = None,
    ) -> None:
        with session_scope(make_sessionmaker(engine)) as session:
            job = session.get(Job, job_id)
            assert job is not None
            for epoch, values in enumerate(epochs, start=1):
                session.add(EpochMetric(job_id=job_id, epoch=epoch, values=values))
            job.status, job.epochs_completed, job.best_epoch = status, len(epochs), best_epoch
            job.started_at = utcnow()
            if status not in ("queued", "running"):
                job.finished_at = utcnow()

    yield write
    engine.dispose()
