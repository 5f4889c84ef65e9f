"""`descent up` stopped with SIGTERM in the middle of a job and started again: the job
was handed back, not left `running` with a lease to wait out, and resumes at once."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from descent_up import Up
from support import COMMON_ENV, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.server]

EPOCHS = 6
#: About a second an epoch alone, several under load: long enough to stop in the middle.
JOB = {
    "dataset": {"name": "digits"},
    "model": {"kind": "mlp", "hidden": [256, 256]},
    "training": {"epochs": EPOCHS, "batch_size": 8},
}
#: A lease the old way (kill the job, resume once its lease expired) would visibly wait for.
LEASE_SECONDS = 120


def row(data_dir: Path, job_id: str) -> tuple[str, int, int, int]:
    with sqlite3.connect(data_dir / "descent.sqlite") as db:
        found = db.execute(
            "SELECT status, attempt, dispatch, epochs_completed FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
    assert found is not None
    return found


def test_a_job_stopped_with_descent_up_resumes_at_the_next_start_without_waiting_out_its_lease(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    env.update(COMMON_ENV, PYTHONUNBUFFERED="1", DESCENT_LEASE_SECONDS=str(LEASE_SECONDS))
    data_dir = tmp_path / "data"
    first = Up(data_dir, tmp_path / "up1.log", env)
    try:
        first.wait_healthy()
        headers = {"Authorization": f"Bearer {(data_dir / 'token').read_text().strip()}"}
        r = httpx.post(f"{first.base}/v1/jobs", json=JOB, headers=headers, timeout=10)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        path = f"/v1/jobs/{job_id}"
        wait_for(
            lambda: (
                httpx.get(f"{first.base}{path}", headers=headers, timeout=5).json()[
                    "epochs_completed"
                ]
                >= 2
            ),
            120,
            what="two epochs of the job",
        )
    finally:
        # The worker's bound (DESCENT_WORKER_STOP_SECONDS, 20 s) and the API's few seconds.
        first.stop(timeout=60)
    status, attempt, dispatch, epochs = row(data_dir, job_id)
    assert (status, attempt, dispatch) == ("queued", 1, 2), first.output()[-3000:]
    assert 2 <= epochs < EPOCHS
    assert "handed back after epoch" in first.output()

    second = Up(data_dir, tmp_path / "up2.log", env)
    try:
        second.wait_healthy()
        url = f"{second.base}{path}"
        job = wait_for(
            lambda: (
                (j := httpx.get(url, headers=headers, timeout=5).json())["status"]
                not in ("queued", "running")
                and j
            ),
            240,
            what="the job to finish",
        )
        assert job["status"] == "succeeded", (job["status_reason"], second.output()[-3000:])
        epoch_rows = httpx.get(f"{url}/metrics", headers=headers, timeout=5).json()["epochs"]
        attempts = httpx.get(f"{url}/attempts", headers=headers, timeout=5).json()
    finally:
        second.stop(timeout=60)
    # Every epoch once: no gap where the first attempt stopped, no epoch twice.
    assert [e["epoch"] for e in epoch_rows] == list(range(1, EPOCHS + 1))
    assert [a["outcome"] for a in attempts] == ["handed_back", "succeeded"]
    assert attempts[1]["resumed_from_epoch"] == epochs
    # Taken by a new attempt while the first one's lease was still live: the old way, a
    # takeover of a job left `running`, could not have started it before the lease
    # expired (its last heartbeat was no later than the attempt's end).
    handed_back = datetime.fromisoformat(attempts[0]["ended_at"])
    resumed = datetime.fromisoformat(attempts[1]["started_at"])
    assert resumed < handed_back + timedelta(seconds=LEASE_SECONDS)
