"""The worker's side of the structured logs (workers/app.py): Celery's own lines about a
job carry its fields — "received" in the main process from the message's arguments, the
pool's "succeeded in" from the task's binding — and nothing is left bound after a task.
The whole path, through real processes, is tests/integration/test_logs.py."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from service import logs
from service.queue import TRAIN_JOB


@pytest.fixture
def app_module(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    # Importing the app makes the default embedded broker, ./.descent/broker.sqlite.
    monkeypatch.chdir(tmp_path)
    import workers.app

    return workers.app


@pytest.mark.parametrize(
    ("argsrepr", "expected"),
    [
        ("['5f0c-id', 3]", ("5f0c-id", 3)),
        ("('5f0c-id',)", ("5f0c-id", None)),
        ("['5f0c-id', None]", ("5f0c-id", None)),
        ("[]", (None, None)),
        ("[1, 2]", (None, None)),
        ("<object at 0x7f>", (None, None)),
        ("__import__('os')", (None, None)),
        (None, (None, None)),
        ("['" + "x" * 300 + "']", (None, None)),
    ],
)
def test_the_job_is_read_from_a_messages_arguments_and_nothing_else(
    app_module, argsrepr, expected
) -> None:  # noqa: ANN001
    assert app_module._job_args(argsrepr) == expected


def test_celerys_received_line_carries_the_job(app_module) -> None:  # noqa: ANN001
    data = {"id": "t-1", "name": TRAIN_JOB, "args": "['job-7', 2]", "kwargs": "{}", "eta": None}
    rec = logging.LogRecord(
        "celery.worker.strategy", logging.INFO, __file__, 1, "Task %(name)s[%(id)s] received",
        (data,), None,
    )  # fmt: skip
    rec.data = data  # type: ignore[attr-defined]
    assert app_module._received_job(rec)
    doc = json.loads(logs.JsonFormatter().format(rec))
    assert (doc["job_id"], doc["dispatch"]) == ("job-7", 2)
    assert doc["message"] == f"Task {TRAIN_JOB}[t-1] received"
    other = logging.LogRecord("celery", logging.INFO, __file__, 1, "x", None, None)
    other.data = {"name": "celery.ping", "args": "['job-7', 2]"}  # type: ignore[attr-defined]
    app_module._received_job(other)
    assert getattr(other, "job_id", None) is None


def test_a_train_task_binds_its_job_until_it_has_run(app_module) -> None:  # noqa: ANN001
    train = SimpleNamespace(name=TRAIN_JOB)
    try:
        app_module._bind_job(task=train, args=["job-8", 4], kwargs={})
        assert (logs.JOB_ID.get(), logs.DISPATCH.get()) == ("job-8", 4)
        logs.ATTEMPT.set(2)  # as the runner does once it has claimed the job
        app_module._unbind_job(task=train)
        assert (logs.JOB_ID.get(), logs.ATTEMPT.get(), logs.DISPATCH.get()) == (None,) * 3
        app_module._bind_job(task=train, args=[], kwargs={"job_id": "job-9"})
        assert (logs.JOB_ID.get(), logs.DISPATCH.get()) == ("job-9", None)
        app_module._unbind_job()
        app_module._bind_job(task=SimpleNamespace(name="celery.ping"), args=["x"], kwargs={})
        assert logs.JOB_ID.get() is None
    finally:
        app_module._unbind_job()
