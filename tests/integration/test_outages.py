"""Outages of the parts Descent depends on, with real processes: a Redis restart that
loses every queued message, a database that disappears mid-job, and jobs too big or too
long for their worker. PostgreSQL + Redis (the full stack), except the last."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import FAST_RECOVERY_ENV, RedisServer, TcpProxy, record_figures
from sqlalchemy import make_url
from stack import Stack, spec
from support import Backend, make_backend, wait_for

# A Redis restart and a database cut off, each timed against 3-s leases, and a job sized
# to run out of memory: alone, so that no neighbour shares the outage or the memory.
pytestmark = [pytest.mark.integration, pytest.mark.serial]


@pytest.fixture
def pg_backend(postgres_backend: Backend) -> Backend:
    postgres_backend.env.update(FAST_RECOVERY_ENV)
    return postgres_backend


@pytest.mark.postgres
def test_a_redis_restart_loses_no_job(pg_backend: Backend, tmp_path: Path):
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    pg_backend.env["DESCENT_BROKER_URL"] = redis.url
    # Far beyond the test: the queued jobs run because the reaper saw the broker restart
    # (its run_id changed), not because a timer ran out.
    pg_backend.env["DESCENT_REDISPATCH_SECONDS"] = "3600"
    stack = Stack(pg_backend, tmp_path)
    try:
        worker = stack.start_worker()
        wait_for(lambda: "worker process ready" in worker.output(), 60, what="the pool process")
        jobs = [stack.submit(spec(6)) for _ in range(3)]
        stack.wait(jobs[0], lambda j: j.epochs_completed >= 1, what="the first job running")
        # Queued, and no worker holds their messages: they wait in Redis alone.
        assert all(stack.row(j).status == "queued" for j in jobs[1:])
        assert all(stack.row(j).held_by is None for j in jobs[1:])
        redis.restart()  # no persistence: the queued messages are gone
        done = [stack.wait_terminal(j, timeout=180) for j in jobs]
        assert [j.status for j in done] == ["succeeded"] * 3, [j.status_reason for j in done]
        assert "the broker restarted" in worker.output()
        # The queued ones were sent again (their first message lost), the running one not.
        assert [j.dispatch for j in done] == [1, 2, 2], stack.logs()
        for j in jobs:
            assert stack.epochs(j) == list(range(1, 7))
        record_figures(
            "Redis restart (no persistence)",
            backend="postgres",
            faults=1,
            jobs=3,
            completed=3,
            duplicates=0,
            lost=0,
        )
    finally:
        stack.close()
        redis.kill()


@pytest.mark.postgres
def test_the_database_going_away_pauses_a_job_and_the_api_answers_503(
    pg_backend: Backend, tmp_path: Path
):
    url = make_url(pg_backend.env["DESCENT_DATABASE_URL"])
    proxy = TcpProxy(url.port or 5432)
    pg_backend.env["DESCENT_DATABASE_URL"] = url.set(port=proxy.port).render_as_string(
        hide_password=False
    )
    stack = Stack(pg_backend, tmp_path)
    try:
        worker = stack.start_worker()
        job_id = stack.submit(spec(10))
        stack.wait(job_id, lambda j: j.epochs_completed >= 2, what="epoch 2")
        proxy.cut()
        # Longer than a lease: no worker can renew one while the database is away.
        deadline = time.monotonic() + 6
        answers = set()
        while time.monotonic() < deadline:
            r = stack.client.get(f"/v1/jobs/{job_id}")
            answers.add(r.status_code)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "database_unavailable", r.text
            time.sleep(0.5)
        assert stack.client.get("/healthz").status_code == 503
        proxy.restore()
        job = stack.wait_terminal(job_id, timeout=120)
        assert job.status == "succeeded", (job.status_reason, stack.logs())
        assert stack.epochs(job_id) == list(range(1, 11))
        assert "database unavailable" in stack.logs()
        # Its row in the fleet registry could not be written meanwhile; it is again.
        assert "fleet: could not write worker" in worker.output()
        wait_for(lambda: "row written again" in worker.output(), 10, what="the registry back")
        # The worker waited for the database and carried on: no other attempt took over.
        assert [a.outcome for a in stack.attempts(job_id)] == ["succeeded"]
        record_figures(
            "database outage (6 s, PostgreSQL)",
            backend="postgres",
            faults=1,
            jobs=1,
            completed=1,
            api_answers=sorted(answers),
            duplicates=0,
            lost=0,
        )
    finally:
        stack.close()
        proxy.close()


@pytest.fixture
def sqlite_stack(tmp_path: Path) -> Iterator[Stack]:
    backend = make_backend("sqlite", tmp_path)
    backend.env.update(FAST_RECOVERY_ENV)
    # Room for torch and a small job; far too little for the 268M-parameter one below.
    backend.env["DESCENT_WORKER_MAX_MEMORY_MB"] = "2500"
    backend.env["DESCENT_MAX_JOB_MEMORY_MB"] = "100000"
    backend.env["DESCENT_MAX_PARAMETERS"] = "1000000000"
    stack = Stack(backend, tmp_path)
    yield stack
    stack.close()
    backend.close()


def test_out_of_memory_and_time_limits_fail_once_and_the_worker_goes_on(sqlite_stack: Stack):
    stack = sqlite_stack
    stack.start_worker()
    huge = stack.submit(
        {
            "dataset": {"name": "digits"},
            "model": {"kind": "mlp", "hidden": [16384, 16384]},
            "optimizer": {"name": "adam"},
            "training": {"epochs": 2},
        }
    )
    slow = stack.submit(spec(50, time_limit_seconds=2))
    fine = stack.submit(spec(2))
    job = stack.wait_terminal(huge)
    assert job.status == "failed" and "out of memory" in job.status_reason, job.status_reason
    assert len(stack.attempts(huge)) == 1  # failed once, not retried
    job = stack.wait_terminal(slow)
    assert job.status == "failed" and "time limit" in job.status_reason, job.status_reason
    assert 0 < job.epochs_completed < 50
    job = stack.wait_terminal(fine)
    assert job.status == "succeeded", job.status_reason
    record_figures(
        "out of memory and time limit",
        backend="sqlite",
        faults=2,
        jobs=3,
        completed=3,
        retries=0,
    )
