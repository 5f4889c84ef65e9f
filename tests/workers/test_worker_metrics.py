"""The workers' metrics: a job run by ``workers.runner.run_job`` in a process of its own in
Prometheus multiprocess mode, as a pool process runs it, leaves its epochs in the
metrics folder and each epoch's resources on its row; the launcher prepares the folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from support import IN_PROCESS_WORKER, ROOT, Backend, bearer, make_user

from service.db import make_engine, make_sessionmaker
from service.jobs.models import Job
from service.main import create_app
from service.metrics.multiproc import ENV, WorkerFiles
from workers.__main__ import export_metrics_dir

EPOCHS = 3
JOB = {
    "dataset": {"name": "iris"},
    "model": {"kind": "mlp", "hidden": [8]},
    "training": {"epochs": EPOCHS, "batch_size": 16, "device": "cpu"},
}

#: A pool process's part: one attempt at the job, nothing else.
RUN_JOB = """
import sys
from service.config import Settings
from workers.runner import run_job
run_job(sys.argv[1], settings=Settings(), dispatch=int(sys.argv[2]), send=lambda *a: None)
"""


def samples(folder: Path) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in WorkerFiles(folder).collect()
        for s in family.samples
    }


def test_an_attempt_leaves_its_epochs_in_the_metrics_folder_and_resources_on_its_rows(
    sqlite_backend: Backend, tmp_path: Path
) -> None:
    token = make_user(sqlite_backend, "ada")
    with TestClient(create_app(sqlite_backend.settings()), headers=bearer(token)) as api:
        r = api.post("/v1/jobs", json=JOB)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        engine = make_engine(str(sqlite_backend.settings().database_url))
        with make_sessionmaker(engine)() as s:
            dispatch = s.scalar(select(Job.dispatch).where(Job.id == job_id))
        engine.dispose()

        folder = tmp_path / "metrics"
        folder.mkdir()
        env = sqlite_backend.process_env() | {
            f"DESCENT_{k.upper()}": str(v) for k, v in IN_PROCESS_WORKER.items()
        }
        env |= {ENV: str(folder), "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", RUN_JOB, job_id, str(dispatch)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"

        found = samples(folder)
        key = ("descent_worker_epoch_duration_seconds_count", frozenset())
        assert found[key] == EPOCHS
        assert found[("descent_worker_epochs_total", frozenset())] == EPOCHS
        assert found[("descent_worker_epoch_duration_seconds_sum", frozenset())] > 0
        assert found.get(("descent_worker_resumes_total", frozenset())) == 0
        # The process ended, and with it its attempt: nothing counts as running.
        assert found.get(("descent_worker_jobs_running", frozenset()), 0) == 0

        body = api.get(f"/v1/jobs/{job_id}/metrics").json()
        used = body["resources"]
        assert [u["epoch"] for u in used] == [e["epoch"] for e in body["epochs"]]
        assert [u["epoch"] for u in used] == list(range(1, EPOCHS + 1))
        for u in used:
            assert u["device"] == "cpu" and u["device_name"]
            assert u["rss_peak_bytes"] > 10 * 2**20  # torch alone is more than that
            assert u["cuda_max_allocated_bytes"] is None
        # The CSV stays as it was: metrics only.
        csv = api.get(f"/v1/jobs/{job_id}/metrics", params={"format": "csv"}).text
        assert "rss_peak_bytes" not in csv


def test_the_launcher_empties_the_metrics_folder_unless_descent_up_prepared_it(
    sqlite_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"old run")
    (folder / "gauge_livesum_123.db").write_bytes(b"old run")
    (folder / "notes.db").write_bytes(b"someone else's")  # not prometheus_client's: kept
    # setenv first, so that the variable is put back as it was (unset) after the test.
    monkeypatch.setenv(ENV, "")
    monkeypatch.delenv(ENV)
    settings = sqlite_backend.settings().model_copy(update={"metrics_dir": folder})
    assert export_metrics_dir(settings) == folder
    assert os.environ[ENV] == str(folder)
    assert [p.name for p in folder.iterdir()] == ["notes.db"]

    # Set already (descent up shares one folder among its workers): left as it is.
    (folder / "counter_456.db").write_bytes(b"a sibling's")
    assert export_metrics_dir(settings) == folder
    assert (folder / "counter_456.db").exists()

    # No folder, no port: no multiprocess mode at all.
    monkeypatch.delenv(ENV)
    plain = sqlite_backend.settings()
    assert export_metrics_dir(plain) is None
    assert ENV not in os.environ

    # A port without a folder: one in the temporary directory, the same at each start.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    served = plain.model_copy(update={"worker_metrics_port": 9101})
    assert export_metrics_dir(served) == tmp_path / "descent-metrics-9101"
    assert (tmp_path / "descent-metrics-9101").is_dir()
