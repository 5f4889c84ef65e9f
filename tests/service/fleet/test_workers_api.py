"""``GET /v1/workers`` on the embedded pair (SQLite and the SQL broker): the workers' rows as
a worker writes them, each shown in its derived state (a silent one is `lost`), what each
runs, the queues' counts and broker depths, admins only, and a broker that is down."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from faults import free_port
from fleet_rows import add_worker, set_job
from support import Backend, bearer, make_user, make_user_at

from service.config import Settings
from service.db import utcnow
from service.fleet import router as fleet_router
from service.main import create_app
from service.migrate import upgrade

SMALL_JOB = {"name": "fleet probe", "dataset": {"name": "moons"}, "training": {"epochs": 7}}


@pytest.fixture
def admin(sqlite_backend: Backend) -> dict[str, str]:
    return bearer(make_user(sqlite_backend, "root", admin=True))


@pytest.fixture
def url(sqlite_backend: Backend) -> str:
    return str(sqlite_backend.settings().database_url)


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["id"]: w for w in body["workers"]}


def test_admins_see_each_worker_in_its_derived_state_and_what_it_runs(
    api: TestClient, admin: dict[str, str], url: str, sqlite_backend: Backend
) -> None:
    queue = sqlite_backend.settings().queue
    lease = sqlite_backend.settings().lease_seconds
    job = api.post("/v1/jobs", json=SMALL_JOB).json()
    held = api.post("/v1/jobs", json=SMALL_JOB | {"name": "held"}).json()
    now = utcnow()
    set_job(url, job["id"], status="running", epochs_completed=3, started_at=now)
    add_worker(
        url,
        "gpu-1:10",
        queue=queue,
        state="ready",
        running=[job["id"]],
        devices=[{"name": "NVIDIA H100 [80GB]", "kind": "cuda", "memory_bytes": 80 << 30}],
        cuda_version="12.4",
        concurrency=2,
        torch_threads=8,
    )
    set_job(url, held["id"], held_by="gpu-1:10", held_at=now)
    # Silent for longer than the lease, never stopped: lost, whatever it last wrote.
    add_worker(
        url,
        "gpu-2:11",
        queue=queue,
        state="ready",
        running=[job["id"]],
        heartbeat_at=now - timedelta(seconds=lease + 5),
    )
    add_worker(
        url,
        "cpu-1:12",
        queue=queue,
        state="stopped",
        running=[],
        heartbeat_at=now - timedelta(hours=1),
        stopped_at=now - timedelta(hours=1),
    )
    add_worker(
        url,
        "cpu-0:9",
        queue=queue,
        state="stopped",
        heartbeat_at=now - timedelta(days=2),
        stopped_at=now - timedelta(days=2),
    )
    add_worker(url, "cpu-2:13", queue=queue, state="starting")

    r = api.get("/v1/workers", headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    # Live first (ready, starting), then lost, then stopped; the one stopped two days ago
    # is left out and counted.
    assert [w["id"] for w in body["workers"]] == ["gpu-1:10", "cpu-2:13", "gpu-2:11", "cpu-1:12"]
    assert body["hidden"] == 1 and body["lease_seconds"] == lease
    workers = by_id(body)
    states = {w: workers[w]["state"] for w in workers}
    assert states == {
        "gpu-1:10": "ready",
        "cpu-2:13": "starting",
        "gpu-2:11": "lost",
        "cpu-1:12": "stopped",
    }
    ready = workers["gpu-1:10"]
    assert ready["devices"] == [
        {"name": "NVIDIA H100 [80GB]", "kind": "cuda", "memory_bytes": 80 << 30}
    ]
    assert (ready["cuda_version"], ready["concurrency"], ready["torch_threads"]) == ("12.4", 2, 8)
    assert ready["heartbeat_age_seconds"] < lease
    [running] = ready["running"]
    assert (running["id"], running["name"], running["status"]) == (
        job["id"],
        "fleet probe",
        "running",
    )
    assert (running["epoch"], running["epochs"], running["owner"]) == (3, 7, "tester")
    assert ready["held"] == [held["id"]]
    # The lost worker's last heartbeat named the job, but the job is not its any more.
    assert (
        workers["gpu-2:11"]["running"] == []
        and workers["gpu-2:11"]["heartbeat_age_seconds"] > lease
    )

    everything = api.get("/v1/workers", params={"all": "true"}, headers=admin).json()
    assert "cpu-0:9" in by_id(everything) and everything["hidden"] == 0
    lost = api.get("/v1/workers", params={"state": "lost"}, headers=admin).json()
    assert list(by_id(lost)) == ["gpu-2:11"] and lost["hidden"] == 4
    # A state filter lists the old ones too.
    stopped = api.get("/v1/workers", params={"state": "stopped, ready"}, headers=admin).json()
    assert sorted(by_id(stopped)) == ["cpu-0:9", "cpu-1:12", "gpu-1:10"]


def test_a_bad_state_is_a_422_naming_the_allowed_ones(
    api: TestClient, admin: dict[str, str]
) -> None:
    r = api.get("/v1/workers", params={"state": "ready,gone"}, headers=admin)
    assert r.status_code == 422
    [problem] = r.json()["error"]["fields"]
    assert problem["field"] == "state" and "gone" in problem["message"]
    assert problem["allowed"] == ["starting", "ready", "stopping", "stopped", "lost"]


def test_the_fleet_is_403_for_a_user_who_is_not_an_admin(api: TestClient, url: str) -> None:
    add_worker(url, "gpu-1:10", queue="descent", state="ready")
    r = api.get("/v1/workers")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden" and "admin" in r.json()["error"]["message"]
    assert "gpu-1" not in r.text


def test_each_queue_counts_its_jobs_workers_and_broker_messages(
    api: TestClient, admin: dict[str, str], url: str, sqlite_backend: Backend
) -> None:
    queue = sqlite_backend.settings().queue
    ids = [api.post("/v1/jobs", json=SMALL_JOB).json()["id"] for _ in range(3)]
    # One of them runs, from a worker of another pool; one was sent before jobs recorded
    # their queue (null: the API's own).
    set_job(url, ids[0], status="running", queue="gpu")
    set_job(url, ids[1], queue=None)
    add_worker(url, "gpu-1:10", queue="gpu", state="ready", running=[ids[0]])
    add_worker(
        url, "gpu-2:11", queue="gpu", state="ready", heartbeat_at=utcnow() - timedelta(minutes=5)
    )

    body = api.get("/v1/workers", headers=admin).json()
    assert body["broker_reachable"] is True
    queues = {q["name"]: q for q in body["queues"]}
    assert [q["name"] for q in body["queues"]] == [queue, "gpu"]  # the API's own first
    own, gpu = queues[queue], queues["gpu"]
    # Every job's message went to the API's queue, and no worker took one: the broker
    # holds all three, whatever the rows say since.
    assert (own["depth"], own["queued"], own["running"], own["workers"]) == (3, 2, 0, 0)
    assert own["oldest_queued_seconds"] >= 0 and own["oldest_queued_at"] is not None
    # The lost worker is no worker of the queue's.
    assert (gpu["depth"], gpu["queued"], gpu["running"], gpu["workers"]) == (0, 0, 1, 1)
    assert gpu["oldest_queued_at"] is None and gpu["broker_error"] is None


@pytest.fixture
def broker_down(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    # Nothing listens on this port: the broker is down, the database is fine.
    settings = Settings(data_dir=tmp_path, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    upgrade(str(settings.database_url))
    token = make_user_at(str(settings.database_url), "root", admin=True)
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        yield client, str(settings.database_url)


def test_a_broker_that_is_down_leaves_the_depths_null_not_a_500(
    broker_down: tuple[TestClient, str],
) -> None:
    client, url = broker_down
    add_worker(url, "gpu-1:10", queue="gpu", state="ready")
    r = client.get("/v1/workers")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["broker_reachable"] is False
    assert [w["id"] for w in body["workers"]] == ["gpu-1:10"]
    assert {q["name"] for q in body["queues"]} == {"descent", "gpu"}
    for q in body["queues"]:
        assert q["depth"] is None and q["broker_error"], q


def test_postgresql_and_redis_give_the_same_listing(postgres_backend: Backend) -> None:
    settings = postgres_backend.settings()
    url = str(settings.database_url)
    admin = bearer(make_user(postgres_backend, "root", admin=True))
    with TestClient(create_app(settings), headers=admin) as client:
        ids = [client.post("/v1/jobs", json=SMALL_JOB).json()["id"] for _ in range(2)]
        set_job(url, ids[0], status="running", epochs_completed=2)
        now = utcnow()
        add_worker(url, "gpu-1:10", queue=settings.queue, running=[ids[0]])
        add_worker(url, "gpu-2:11", queue=settings.queue, heartbeat_at=now - timedelta(hours=1))
        add_worker(
            url,
            "cpu-0:9",
            queue=settings.queue,
            state="stopped",
            heartbeat_at=now - timedelta(days=2),
            stopped_at=now - timedelta(days=2),
        )
        body = client.get("/v1/workers").json()
        assert [(w["id"], w["state"]) for w in body["workers"]] == [
            ("gpu-1:10", "ready"),
            ("gpu-2:11", "lost"),
        ]
        assert body["hidden"] == 1 and body["broker_reachable"] is True
        assert [j["epoch"] for j in body["workers"][0]["running"]] == [2]
        [queue] = body["queues"]
        # Redis holds both messages (no worker took them); one job still waits in SQL.
        assert (queue["depth"], queue["queued"], queue["running"], queue["workers"]) == (2, 1, 1, 1)
        lost = client.get("/v1/workers", params={"state": "lost,stopped"}).json()
        assert [w["id"] for w in lost["workers"]] == ["gpu-2:11", "cpu-0:9"]


def test_a_broker_that_never_answers_is_given_up_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A listener that never accepts: connections open, and nothing ever answers them.
    monkeypatch.setattr(fleet_router, "BROKER_SECONDS", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        broker = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        settings = Settings(data_dir=tmp_path, broker_url=broker)
        upgrade(str(settings.database_url))
        token = make_user_at(str(settings.database_url), "root", admin=True)
        with TestClient(create_app(settings), headers=bearer(token)) as client:
            r = client.get("/v1/workers")
    assert r.status_code == 200, r.text
    assert r.json()["broker_reachable"] is False
    [queue] = r.json()["queues"]
    assert queue["depth"] is None
    assert queue["broker_error"] == "the broker did not answer within 0.5 s"
