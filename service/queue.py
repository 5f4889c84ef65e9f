"""The Celery app as the API (the producer) sees it, and the task names.

The API only ever sends tasks by name, so it never imports ``workers`` (or torch).
Task names are constants: renaming a function never strands a queued message.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Protocol

from celery import Celery
from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import make_url

from service.config import Settings

TRAIN_JOB = "descent.train_job"


class Send(Protocol):
    """Sends a job's message: ``(job_id, dispatch, queue)``. ``queue`` is the job's own
    (``jobs.queue``), so a re-sent job stays in its pool (a GPU queue, a CPU queue); None,
    for rows from before queues were recorded, sends to the sender's own queue."""

    def __call__(self, job_id: str, dispatch: int, queue: str | None = None, /) -> None: ...


class EmbeddedSqlTransport(kombu_sqla.Transport):
    """Celery's SQLAlchemy transport, polling every 0.2 s instead of every second.

    A worker takes one message per poll (prefetch 1, late acks), so a 1 s poll caps it at
    one job a second — a queue of cancelled jobs would delay the next real one by a
    second each.
    """

    polling_interval = 0.2


def celery_config(settings: Settings) -> dict[str, object]:
    """Configuration shared by the producer (API) and the consumer (worker)."""
    broker_url = str(settings.broker_url)
    conf: dict[str, object] = {
        "broker_url": broker_url,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "task_default_queue": settings.queue,
        "task_routes": {TRAIN_JOB: {"queue": settings.queue}},
        # Long training tasks: acknowledge after the task ran, take one at a time,
        # and put the message back if the worker process dies mid-task.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 2,
        },
        "worker_send_task_events": False,
        # A lost broker connection does not stop a running job: its lease, not the
        # message, decides who may write (and Celery 6 will flip this default).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }
    if broker_url.startswith("sqla+"):
        # The URL form can only name kombu's own transport; name ours explicitly.
        conf["broker_url"] = broker_url.removeprefix("sqla+")
        conf["broker_transport"] = f"{__name__}:EmbeddedSqlTransport"
    if broker_url.startswith("sqla+sqlite"):
        prepare_sqlite_broker(broker_url)
        # The busy timeout lets the API and the worker share the broker's SQLite file.
        conf["broker_transport_options"] = {"connect_args": {"timeout": 30}}
    elif settings.redis_url:
        # Redis hands an unacknowledged message out again after this long, even while
        # its task still runs. That copy is harmless — it finds the job held by a live
        # lease and is dropped (workers/claim.py) — so the timeout only bounds how long
        # a message of a vanished worker waits; the reaper usually recovers it first.
        conf["broker_transport_options"] = {"visibility_timeout": 3600}
    return conf


def prepare_sqlite_broker(broker_url: str) -> None:
    """Create the broker's SQLite file in WAL mode (persistent per file), so the API's
    writes and the worker's polling do not block each other."""
    path = make_url(broker_url.removeprefix("sqla+")).database
    if not path or path == ":memory:":
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=30) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def make_celery(settings: Settings, *, name: str = "descent") -> Celery:
    app = Celery(name)
    app.conf.update(celery_config(settings))
    return app


def send_train_job(app: Celery, queue: str, job_id: str, dispatch: int) -> None:
    """Send the job's message: ``dispatch`` is the job row's counter when it was sent, and
    a worker drops a message whose number is behind the row's (a leftover copy). The one
    place a ``TRAIN_JOB`` message is made, whoever sends it: the API, the reaper, a
    worker advancing a sweep."""
    app.send_task(TRAIN_JOB, args=[job_id, dispatch], queue=queue)


def sender(app: Celery, queue: str) -> Send:
    """``send_train_job`` bound to ``app``, sending to the job's queue when it is given and
    to ``queue`` (the sender's own) otherwise."""

    def send(job_id: str, dispatch: int, job_queue: str | None = None, /) -> None:
        send_train_job(app, job_queue or queue, job_id, dispatch)

    return send


def queue_depth(app: Celery, queue: str) -> int:
    """Messages waiting in ``queue`` (not yet delivered to a worker), on either broker:
    Redis counts its priority lists, the SQL transport its visible rows. Raises when the
    broker cannot be reached."""
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
        # Not passive: an empty Redis queue has no key, and a passive declare would raise.
        declared = conn.default_channel.queue_declare(queue=queue, durable=True)
        return int(declared.message_count)


def broker_instance(app: Celery) -> str | None:
    """What identifies the running broker server: Redis's ``run_id``, which changes on
    every restart (a restart without persistence loses every queued message). None for
    the SQL broker, whose messages are rows that outlive any process."""
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
        client = getattr(conn.default_channel, "client", None)
        if client is None or not hasattr(client, "info"):
            return None
        return str(client.info("server")["run_id"])


class Producer:
    """Sends tasks by name. One per API process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = make_celery(settings, name="descent-api")

    def enqueue_training(self, job_id: str, dispatch: int, queue: str | None = None) -> None:
        """Send the job's message (``send_train_job``) to ``queue``, the job's own (default:
        this API's)."""
        send_train_job(self.app, queue or self.settings.queue, job_id, dispatch)

    def queue_depth(self, queue: str | None = None) -> int:
        """Messages waiting in ``queue`` (default: this API's own)."""
        return queue_depth(self.app, queue or self.settings.queue)

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
