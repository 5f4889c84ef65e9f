"""Structured logs, read as an operator's collector would: `descent up` with
``DESCENT_LOG_FORMAT=json`` runs the API and a supervised worker process, one job goes
from submit to succeeded, and its lines are joined by ``job_id`` across both (issue 17,
acceptance 4). A token sent in a query string comes back 401 and never reaches the log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from descent_up import Up
from support import COMMON_ENV, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.server]

SECRET = "SECRET-in-the-query-0123456789"
JOB = {
    "dataset": {"name": "iris"},
    "model": {"kind": "mlp", "hidden": [8]},
    "training": {"epochs": 3, "batch_size": 16},
}


def parse(text: str) -> list[dict]:
    """Every line of ``text`` as JSON; fails on the first line that is not."""
    lines = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"line {n} is not JSON: {line!r}\n{text[-3000:]}") from None
        assert isinstance(doc, dict) and {"ts", "level", "logger", "message"} <= doc.keys(), line
        lines.append(doc)
    return lines


def test_one_jobs_json_lines_join_by_job_id_across_api_and_worker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    env.update(COMMON_ENV, PYTHONUNBUFFERED="1", DESCENT_LOG_FORMAT="json")
    up = Up(tmp_path / "data", tmp_path / "up.log", env)
    base, output = up.base, up.output
    try:
        up.wait_healthy()
        token = up.token()
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "submit-1"}

        # A token in the query string is refused, and not written down either.
        r = httpx.get(f"{base}/v1/jobs", params={"token": SECRET}, timeout=5)
        assert r.status_code == 401
        assert len(r.headers["x-request-id"]) == 16  # one of the server's own

        r = httpx.post(f"{base}/v1/jobs", json=JOB, headers=headers, timeout=10)
        assert r.status_code == 202, r.text
        assert r.headers["x-request-id"] == "submit-1"
        job_id = r.json()["id"]
        user_id = httpx.get(f"{base}/v1/me", headers=headers, timeout=5).json()["id"]

        def finished() -> dict | None:
            job = httpx.get(f"{base}/v1/jobs/{job_id}", headers=headers, timeout=5).json()
            return job if job["status"] not in ("queued", "running") else None

        del headers["X-Request-ID"]  # the polls get ids of their own
        job = wait_for(finished, 120, what="the job to finish")
        assert job["status"] == "succeeded", job
        # The worker's last lines about the job come after its row says succeeded.
        wait_for(lambda: "succeeded in" in output(), 30, what="Celery's task-succeeded line")
    finally:
        up.stop(30)

    text = output()
    lines = parse(text)
    assert SECRET not in text
    (refused,) = [x for x in lines if x["logger"] == "uvicorn.access" and x.get("status") == 401]
    assert "token=[REDACTED]" in refused["message"] and refused["request_id"]

    # Every line that mentions the job says so in its job_id field: the access lines of
    # the polls (GET /v1/jobs/{id}) too.
    about_job = [x for x in lines if job_id in json.dumps(x)]
    assert all(x.get("job_id") == job_id for x in about_job), [
        x for x in about_job if x.get("job_id") != job_id
    ]
    polls = [x for x in about_job if x["logger"] == "uvicorn.access"]
    assert polls and all(x["request_id"] != "submit-1" for x in polls)
    api = [x for x in about_job if x["logger"].startswith("service.")]
    worker = [x for x in about_job if x["logger"].startswith(("workers.", "celery."))]
    # The API's submit line, with the request and the user it came from.
    (created,) = [x for x in api if "created" in x["message"]]
    assert created["request_id"] == "submit-1" and created["user_id"] == user_id
    access = [x for x in lines if x.get("request_id") == "submit-1"]
    assert any(x["logger"] == "uvicorn.access" and x["status"] == 202 for x in access)
    # The worker's: received, claimed, each epoch, succeeded; each with its dispatch, and
    # the runner's with the attempt too.
    said = " | ".join(x["message"] for x in worker)
    for what in ("received", "attempt 1 claimed", *(f"epoch {e} recorded" for e in (1, 2, 3))):
        assert what in said, said
    assert "succeeded after 3" in said and "succeeded in" in said, said
    assert all(x["dispatch"] == created["dispatch"] == 1 for x in worker), worker
    runner = [x for x in worker if x["logger"] == "workers.runner"]
    assert runner and all(x["attempt"] == 1 for x in runner), runner
