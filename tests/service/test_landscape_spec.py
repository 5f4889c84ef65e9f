"""A landscape job's stored spec says how the weights it studies were trained: the
studied job's optimizer and schedule (an "auto" rate as the value its range test chose),
beside its dataset, model, regularization and training sections."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from job_results import auto_lr_record
from support import Backend

from service.db import make_engine, make_sessionmaker, session_scope
from service.jobs.models import Job
from service.jobs.states import JobStatus
from service.spec.results import JobResult

TRAINED: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "model": {"kind": "mlp", "hidden": [32]},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    "schedule": {"name": "cosine", "warmup_epochs": 1},
    "regularization": {"l2": 0.001},
    "training": {"epochs": 4, "batch_size": 64},
}


def finished(
    backend: Backend, api: TestClient, spec: dict[str, Any], result: JobResult | None = None
) -> str:
    """A job submitted as ``spec`` and left as a worker leaves a succeeded one."""
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    engine = make_engine(backend.settings().database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.status, job.has_model, job.epochs_completed = JobStatus.SUCCEEDED, True, 4
            job.result = result
            session.commit()
    finally:
        engine.dispose()
    return job_id


def landscape_of(api: TestClient, job_id: str) -> dict[str, Any]:
    r = api.post("/v1/jobs", json={"kind": "landscape", "landscape": {"job_id": job_id}})
    assert r.status_code == 202, r.text
    return r.json()["spec"]


def test_a_landscape_keeps_the_studied_jobs_optimizer_and_schedule(
    api: TestClient, sqlite_backend: Backend
) -> None:
    job_id = finished(sqlite_backend, api, TRAINED)
    studied = api.get(f"/v1/jobs/{job_id}").json()["spec"]
    spec = landscape_of(api, job_id)
    assert spec["kind"] == "landscape"
    for section in ("dataset", "model", "optimizer", "schedule", "regularization", "training"):
        assert spec[section] == studied[section], section
    assert spec["optimizer"]["nesterov"] is True and spec["schedule"]["name"] == "cosine"
    assert spec["range_test"] is None


def test_an_auto_rate_is_stored_as_the_value_its_range_test_chose(
    api: TestClient, sqlite_backend: Backend
) -> None:
    auto = TRAINED | {
        "optimizer": {"name": "sgd", "momentum": 0.9},
        "schedule": {"name": "one_cycle", "max_lr": "auto"},
        "range_test": {"steps": 50},
    }
    record = auto_lr_record(0.0739)
    chosen = record.auto_lr.model_copy(update={"fields": ["schedule.max_lr"], "rule": "min_div_10"})
    job_id = finished(sqlite_backend, api, auto, record.model_copy(update={"auto_lr": chosen}))
    spec = landscape_of(api, job_id)
    assert spec["schedule"]["name"] == "one_cycle" and spec["schedule"]["max_lr"] == 0.0739
    assert spec["optimizer"]["momentum"] == 0.9
    assert spec["range_test"] is None
