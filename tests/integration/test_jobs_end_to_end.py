"""From POST /v1/jobs to per-epoch metrics in SQL, through a real Celery worker process.

Run once per storage/broker pair: SQLite + Celery's SQL broker (the embedded default)
and PostgreSQL + Redis (the full stack).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import (
    ROOT,
    Backend,
    Worker,
    bearer,
    make_user,
    start_worker,
    wait_for,
)

from service.main import create_app
from service.spec import COMMON_METRICS, TASK_METRICS, TIMING_METRICS

pytestmark = pytest.mark.integration

TERMINAL = {"succeeded", "failed", "cancelled", "diverged"}
SMALL = {
    "dataset": {"name": "iris"},
    "model": {"kind": "mlp", "hidden": [16]},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "training": {"epochs": 5, "batch_size": 16},
}


class Stack:
    def __init__(self, backend: Backend, client: TestClient, worker: Worker) -> None:
        self.backend, self.client, self.worker = backend, client, worker

    def submit(self, spec: dict) -> dict:
        r = self.client.post("/v1/jobs", json=spec)
        assert r.status_code == 202, r.text
        return r.json()

    def job(self, job_id: str) -> dict:
        return self.client.get(f"/v1/jobs/{job_id}").json()

    def wait(self, job_id: str, timeout: float = 90, statuses: set[str] = TERMINAL) -> dict:
        def done() -> dict | None:
            job = self.job(job_id)
            return job if job["status"] in statuses else None

        try:
            return wait_for(done, timeout, what=f"job {job_id} to reach {statuses}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworker log:\n{self.worker.output()[-3000:]}") from None

    def metrics(self, job_id: str, **params: str) -> dict:
        return self.client.get(f"/v1/jobs/{job_id}/metrics", params=params).json()


@pytest.fixture(scope="module")
def stack(module_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    backend = module_backend
    tmp: Path = tmp_path_factory.mktemp(f"{backend.name}-stack")
    worker = start_worker(backend, tmp / "worker.log")
    token = make_user(backend, "trainer")
    try:
        with TestClient(create_app(backend.settings()), headers=bearer(token)) as client:
            yield Stack(backend, client, worker)
    finally:
        worker.stop()


def test_example_job_succeeds_with_every_metric_each_epoch(stack: Stack) -> None:
    spec = json.loads((ROOT / "examples" / "digits-adam.json").read_text())
    job = stack.submit(spec)
    done = stack.wait(job["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert done["started_at"] and done["finished_at"]
    assert done["device"] == "cpu"
    m = stack.metrics(job["id"])
    epochs = m["epochs"]
    assert [row["epoch"] for row in epochs] == list(range(1, done["epochs_completed"] + 1))
    expected = {*COMMON_METRICS, *TASK_METRICS["classification"], "beta1"}  # 1cycle cycles β1
    assert set(m["names"]) == expected
    for row in epochs:
        assert all(row[name] is not None for name in expected), row
    # Reaches 0.95 within its 20 epochs; early stopping keeps the best epoch's weights.
    assert max(row["val_accuracy"] for row in epochs) >= 0.95
    assert done["final_metrics"] == {k: v for k, v in epochs[-1].items() if k != "epoch"} | {
        "epoch": epochs[-1]["epoch"]
    }
    assert 1 <= done["best_epoch"] <= done["epochs_completed"]


def test_same_spec_twice_gives_identical_metrics(stack: Stack) -> None:
    first, second = stack.submit(SMALL), stack.submit(SMALL)
    for job in (first, second):
        assert stack.wait(job["id"])["status"] == "succeeded"

    def values(job_id: str) -> list[dict]:
        rows = stack.metrics(job_id)["epochs"]
        return [{k: v for k, v in r.items() if k not in TIMING_METRICS} for r in rows]

    assert values(first["id"]) == values(second["id"])
    assert len(values(first["id"])) == 5


def test_too_high_a_learning_rate_diverges_and_the_service_stays_healthy(stack: Stack) -> None:
    job = stack.submit(
        {
            "dataset": {"name": "digits"},
            "optimizer": {"name": "sgd", "lr": 10},
            "training": {"epochs": 10},
        }
    )
    done = stack.wait(job["id"])
    assert done["status"] == "diverged", done
    assert "epoch" in done["status_reason"] and "learning rate" in done["status_reason"]
    assert done["finished_at"] is not None
    assert stack.client.get("/healthz").status_code == 200
    # The worker takes the next job normally.
    assert stack.wait(stack.submit(SMALL)["id"])["status"] == "succeeded"


def test_cancel_stops_a_running_job_and_a_queued_one_never_starts(stack: Stack) -> None:
    long = stack.submit(
        {"dataset": {"name": "digits"}, "training": {"epochs": 500, "batch_size": 8}}
    )
    queued = stack.submit(SMALL)
    stack.wait(long["id"], statuses={"running"}, timeout=60)
    wait_for(lambda: stack.job(long["id"])["epochs_completed"] >= 1, 60, what="an epoch")
    # The worker is busy (one job at a time), so the second job is still queued.
    assert stack.job(queued["id"])["status"] == "queued"
    assert stack.client.post(f"/v1/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"
    r = stack.client.post(f"/v1/jobs/{long['id']}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    done = stack.wait(long["id"], timeout=30)
    assert done["status"] == "cancelled"
    assert done["epochs_completed"] < 500
    assert len(stack.metrics(long["id"])["epochs"]) == done["epochs_completed"]
    # The cancelled queued job was delivered to the worker afterwards and skipped.
    follow = stack.submit(SMALL)
    assert stack.wait(follow["id"])["status"] == "succeeded"
    queued_after = stack.job(queued["id"])
    assert queued_after["status"] == "cancelled" and queued_after["started_at"] is None
    assert stack.metrics(queued["id"])["epochs"] == []


def test_failure_records_why(stack: Stack) -> None:
    # This machine's workers have no GPU: a job that insists on one fails, with the reason.
    job = stack.submit({**SMALL, "training": {**SMALL["training"], "device": "cuda"}})
    done = stack.wait(job["id"])
    if done["status"] == "succeeded":  # pragma: no cover - a worker with a GPU
        pytest.skip("this worker has a GPU")
    assert done["status"] == "failed"
    assert "cuda" in done["status_reason"].lower()


def test_uploaded_regression_dataset_trains_and_the_model_downloads(stack: Stack) -> None:
    import torch

    rows = "".join(f"{i / 10},{(i % 5) / 2},{2 * i / 10 - (i % 5) / 2 + 1}\n" for i in range(200))
    up = stack.client.post(
        "/v1/datasets",
        files={"file": ("line.csv", ("a,b,y\n" + rows).encode(), "text/csv")},
    )
    assert up.status_code == 201, up.text
    spec = {
        "name": 'line fit/../é "x";',
        "dataset": {"name": "uploaded", "id": up.json()["id"]},
        "model": {"kind": "linear"},
        "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        "training": {"epochs": 30, "batch_size": 20},
    }
    done = stack.wait(stack.submit(spec)["id"])
    assert done["status"] == "succeeded", done
    m = stack.metrics(done["id"], names="val_r2,val_mse")
    assert m["names"] == ["epoch", "val_r2", "val_mse"]
    assert m["epochs"][-1]["val_r2"] > 0.99
    csv = stack.client.get(f"/v1/jobs/{done['id']}/metrics", params={"format": "csv"}).text
    assert csv.splitlines()[0].startswith("epoch,train_loss,val_loss")
    assert len(csv.splitlines()) == 31
    r = stack.client.get(f"/v1/jobs/{done['id']}/model")
    assert r.status_code == 200
    # The file name comes from the job's name, with anything but [A-Za-z0-9._-] replaced.
    assert r.headers["content-disposition"] == (
        f'attachment; filename="line_fit_..____x__-{done["id"][:8]}.pt"'
    )
    state = torch.load(io.BytesIO(r.content), weights_only=True)
    assert {tuple(t.shape) for t in state.values()} == {(1, 2), (1,)}
    # The weights, the metrics and the job are their owner's alone.
    other = bearer(make_user(stack.backend, "someone-else"))
    for path in ("", "/metrics", "/model"):
        r = stack.client.get(f"/v1/jobs/{done['id']}{path}", headers=other)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["message"] == f"no job with id {done['id']!r}"
