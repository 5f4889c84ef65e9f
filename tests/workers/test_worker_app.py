"""The Celery contract: JSON only, late acks, one message at a time, names as constants."""

from __future__ import annotations

from service.config import Settings
from service.queue import TRAIN_JOB, Producer


def test_worker_app_settings_suit_long_training_tasks(tmp_path, monkeypatch):
    # Importing the app makes the default embedded broker, ./.descent/broker.sqlite.
    monkeypatch.chdir(tmp_path)
    from workers.app import app
    from workers.tasks import train_job

    conf = app.conf
    assert conf.task_serializer == "json" and list(conf.accept_content) == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert train_job.name == TRAIN_JOB
    assert TRAIN_JOB in app.tasks


def test_producer_and_worker_agree_on_broker_and_queue(tmp_path):
    settings = Settings(data_dir=tmp_path, queue="q-test")
    producer = Producer(settings)
    assert producer.app.conf.broker_url == f"sqlite:///{tmp_path}/broker.sqlite"
    with producer.app.connection_for_write() as conn:
        # Our SQL transport: it polls five times a second, not once.
        assert conn.transport.polling_interval == 0.2
    assert producer.app.conf.task_routes[TRAIN_JOB] == {"queue": "q-test"}
    # The SQLite broker file is created in WAL mode so API and worker do not block.
    import sqlite3

    with sqlite3.connect(tmp_path / "broker.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_redis_redelivery_is_bounded_and_connection_loss_keeps_jobs_running():
    settings = Settings(broker_url="redis://127.0.0.1:6379/0", database_url="sqlite://")
    conf = Producer(settings).app.conf
    # A redelivered copy is dropped by the lease check, so the timeout may be short.
    assert conf.broker_transport_options["visibility_timeout"] == 3600
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is False


def test_every_sender_makes_the_same_message_the_worker_takes(tmp_path):
    """The API's producer and the workers (reaper, sweep advance) send through one helper:
    a message naming the task, the job and its dispatch number, on the configured queue."""
    from service.queue import sender
    from workers.app import app

    settings = Settings(data_dir=tmp_path, queue="q-send")
    producer = Producer(settings)
    producer.enqueue_training("job-a", 1)
    worker_app = type(app)("w", set_as_current=False)
    worker_app.conf.update(producer.app.conf)
    sender(worker_app, settings.queue)("job-b", 3)
    got = []
    with producer.app.connection_for_read() as conn:
        queue = conn.SimpleQueue(settings.queue, no_ack=True)
        for _ in range(2):
            message = queue.get(timeout=5)
            got.append((message.headers["task"], message.payload[0]))
        queue.close()
    assert got == [(TRAIN_JOB, ["job-a", 1]), (TRAIN_JOB, ["job-b", 3])]


def test_the_runner_imports_neither_the_celery_app_nor_its_tasks():
    """No cycle: the task is bound and hands the runner a ``send`` made from its app."""
    import ast
    from pathlib import Path

    import workers.runner
    import workers.tasks  # noqa: F401  (registers the task)
    from workers.app import app

    imported: set[str] = set()
    for node in ast.walk(ast.parse(Path(workers.runner.__file__).read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
    assert not imported & {"workers.app", "workers.tasks"}, imported
    task = app.tasks[TRAIN_JOB]
    assert task.run.__self__ is task  # bound: it reaches its own app
