"""A test stack for the reliability tests: an authenticated in-process API client on a
real backend, real worker processes, and direct reads of the job rows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from fastapi.testclient import TestClient
from faults import kill_group, pool_children
from support import Backend, Worker, make_user, start_worker, wait_for

from service.db import make_engine, make_sessionmaker
from service.jobs.models import Job
from service.main import create_app

TERMINAL = {"succeeded", "failed", "cancelled", "diverged"}


def spec(epochs: int, **training: object) -> dict:
    """Slow enough per epoch (about a second on one thread) for a kill to land inside it."""
    return {
        "name": "chaos",
        "dataset": {"name": "digits"},
        "model": {"kind": "mlp", "hidden": [256, 256], "dropout": 0.1},
        "optimizer": {"name": "adam", "lr": 0.001},
        "schedule": {"name": "cosine"},
        "training": {"epochs": epochs, "batch_size": 8, **training},
    }


class Stack:
    """An API client (in-process, authenticated) and real worker processes."""

    def __init__(self, backend: Backend, tmp: Path) -> None:
        self.backend = backend
        self.tmp = tmp
        self.client = TestClient(create_app(backend.settings()))
        self.client.headers["Authorization"] = f"Bearer {make_user(backend, 'chaos')}"
        self.workers: list[Worker] = []
        self.engine = make_engine(str(backend.settings().database_url))
        self.sessions = make_sessionmaker(self.engine)

    def start_worker(self) -> Worker:
        worker = start_worker(self.backend, self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(w.output()[-3000:] for w in self.workers)

    def submit(self, body: dict) -> str:
        r = self.client.post("/v1/jobs", json=body)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def row(self, job_id: str) -> Job:
        with self.sessions() as s:
            job = s.get(Job, job_id)
            assert job is not None
            return job

    def attempts(self, job_id: str) -> list[SimpleNamespace]:
        r = self.client.get(f"/v1/jobs/{job_id}/attempts")
        assert r.status_code == 200, r.text
        return [SimpleNamespace(**a) for a in r.json()]

    def wait(self, job_id: str, predicate, timeout: float = 120, what: str = "") -> Job:  # noqa: ANN001
        try:
            return wait_for(
                lambda: (job := self.row(job_id)) and predicate(job) and job,
                timeout,
                interval=0.1,
                what=what or f"job {job_id}",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def wait_terminal(self, job_id: str, timeout: float = 180) -> Job:
        return self.wait(job_id, lambda j: j.status in TERMINAL, timeout, "a terminal state")

    def epochs(self, job_id: str) -> list[int]:
        r = self.client.get(f"/v1/jobs/{job_id}/metrics", params={"names": "val_loss"})
        assert r.status_code == 200, r.text
        return [row["epoch"] for row in r.json()["epochs"]]

    def close(self) -> None:
        for w in self.workers:
            kill_group(w.proc.pid)  # no graceful shutdown needed: that is the point
            w.stop()
        self.client.close()
        self.engine.dispose()


def busy_pool(worker: Worker) -> int:
    children = pool_children(worker.proc.pid)
    assert len(children) == 1, children
    return children[0]
