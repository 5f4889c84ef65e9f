"""Worker rows written straight to the database, as a worker registers and heartbeats
(``workers``), and job columns set as the workers leave them: the tests of what the API,
the CLI and the dashboard show of the fleet build the fleet here, without starting one.

Each helper takes the database's URL, so it serves an in-process app's database and a
live `descent up`'s alike.
"""

from __future__ import annotations

from typing import Any

from service.db import make_engine, make_sessionmaker, session_scope, utcnow
from service.fleet.models import Worker
from service.jobs.models import Job

CPU = [{"name": "cpu", "kind": "cpu"}]


def add_worker(database_url: str, worker_id: str, **columns: Any) -> None:
    """A ``workers`` row for ``host:pid`` ``worker_id``: alive now unless ``columns`` say
    otherwise (``heartbeat_at``, ``state``, ``stopped_at``, ``running``, ``devices`` …)."""
    host, _, pid = worker_id.rpartition(":")
    now = utcnow()
    values: dict[str, Any] = {
        "host": host,
        "pid": int(pid),
        "queue": "descent",
        "concurrency": 1,
        "state": "ready",
        "devices": CPU,
        "torch_version": "2.13.0",
        "cuda_version": None,
        "torch_threads": 1,
        "version": "0.1.0",
        "running": [],
        "started_at": now,
        "heartbeat_at": now,
    }
    values.update(columns)
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            session.merge(Worker(id=worker_id, **values))
    finally:
        engine.dispose()


def set_job(database_url: str, job_id: str, **columns: Any) -> None:
    """Set columns of a job row (``status``, ``queue``, ``held_by`` …) as a worker would."""
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            job = session.get(Job, job_id)
            assert job is not None, job_id
            for name, value in columns.items():
                setattr(job, name, value)
    finally:
        engine.dispose()
