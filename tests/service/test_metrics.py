"""``GET /metrics`` on a real SQLite database and SQL broker, no worker running: who may
read it, and gauges that follow what the service does, read back with prometheus_client's
own text-format parser."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from support import ROOT, Backend, bearer, make_user, wait_for

from service.config import Settings
from service.main import create_app

JOB = {"dataset": {"name": "iris"}, "training": {"epochs": 2}}


def scrape(client: TestClient, **headers: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of one scrape: (name, labels) → value."""
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def app_for(backend: Backend, **settings: object) -> TestClient:
    return TestClient(create_app(backend.settings().model_copy(update=settings)))


@pytest.fixture
def admin(sqlite_backend: Backend) -> Iterator[TestClient]:
    token = make_user(sqlite_backend, "root", admin=True)
    with app_for(sqlite_backend) as client:
        client.headers.update(bearer(token))
        yield client


@pytest.fixture
def admin_on_each_backend(backend: Backend) -> Iterator[TestClient]:
    """SQLite with the SQL broker, and PostgreSQL with Redis."""
    token = make_user(backend, "root", admin=True)
    with app_for(backend) as client:
        client.headers.update(bearer(token))
        yield client


def test_metrics_need_an_admin_token_by_default(sqlite_backend: Backend) -> None:
    user = make_user(sqlite_backend, "ada")
    with app_for(sqlite_backend) as client:
        r = client.get("/metrics")
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = client.get("/metrics", headers=bearer(user))
        assert r.status_code == 403, r.text
        assert "admin" in r.json()["error"]["message"]


def test_metrics_auth_none_opens_only_the_metrics(sqlite_backend: Backend) -> None:
    with app_for(sqlite_backend, metrics_auth="none") as client:
        assert value(scrape(client), "descent_database_up") == 1
        assert client.get("/v1/jobs").status_code == 401  # everything else still needs one


def test_job_and_queue_gauges_follow_submissions(admin_on_each_backend: TestClient) -> None:
    admin = admin_on_each_backend
    queue = admin.app.state.settings.queue
    before = scrape(admin)
    assert value(before, "descent_jobs", status="queued", kind="train") == 0
    assert value(before, "descent_queue_depth", queue=queue) == 0
    assert value(before, "descent_oldest_queued_job_age_seconds") == 0
    assert value(before, "descent_broker_up") == 1

    ids = [admin.post("/v1/jobs", json=JOB).json()["id"] for _ in range(3)]
    assert admin.post(f"/v1/jobs/{ids[0]}/cancel").json()["status"] == "cancelled"
    after = scrape(admin)
    assert value(after, "descent_jobs", status="queued", kind="train") == 2
    assert value(after, "descent_jobs", status="cancelled", kind="train") == 1
    assert value(after, "descent_queue_jobs", queue=queue, status="queued") == 2
    # Nobody consumes the queue here: every message sent is still waiting in the broker.
    assert value(after, "descent_queue_depth", queue=queue) == 3
    assert value(after, "descent_oldest_queued_job_age_seconds") > 0
    assert value(after, "descent_epochs_recorded_per_second") == 0
    assert value(after, "descent_workers", state="lost") == 0
    assert value(after, "descent_event_streams", source="job") == 0
    assert value(after, "descent_db_pool_size") > 0


def test_requests_are_counted_by_route_template(admin: TestClient) -> None:
    job_id = admin.post("/v1/jobs", json=JOB).json()["id"]
    for _ in range(2):
        assert admin.get(f"/v1/jobs/{job_id}").status_code == 200
    assert admin.get("/v1/jobs/00000000-0000-4000-8000-000000000000").status_code == 404
    assert admin.get("/no/such/page").status_code == 404
    samples = scrape(admin)
    route = {"method": "GET", "route": "/v1/jobs/{job_id}"}
    assert value(samples, "descent_http_requests_total", **route, status="200") == 2
    assert value(samples, "descent_http_requests_total", **route, status="404") == 1
    assert value(samples, "descent_http_request_duration_seconds_count", **route, status="200") == 2
    # Raw URLs never become labels: an unrouted path is one series for all of them.
    routes = {dict(labels).get("route") for name, labels in samples if "http_requests" in name}
    assert "<unmatched>" in routes and not any(r and job_id in r for r in routes)


def test_a_broker_that_is_down_does_not_fail_the_scrape(sqlite_backend: Backend) -> None:
    token = make_user(sqlite_backend, "root", admin=True)
    # Nothing listens on port 1: the broker's reads fail at once.
    with app_for(sqlite_backend, broker_url="redis://127.0.0.1:1/0") as client:
        samples = scrape(client, **bearer(token))
    assert value(samples, "descent_broker_up") == 0
    assert value(samples, "descent_database_up") == 1
    assert not any(name == "descent_queue_depth" for name, _ in samples)
    assert value(samples, "descent_jobs", status="queued", kind="train") == 0


#: Records what a worker's pool process records for two epochs of an attempt, in
#: multiprocess mode, then exits: its files stay, its "live" gauge must not count.
WORKER_PROCESS = """
from workers import metrics
metrics.attempt_started(2)
for seconds in (0.3, 0.7):
    metrics.epoch_recorded({"epoch_seconds": seconds, "samples_per_second": 1000.0})
metrics.reaped({"requeued": 1, "failed": 0})
"""


def test_the_api_includes_what_worker_processes_wrote(
    sqlite_backend: Backend, tmp_path: Path
) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-c", WORKER_PROCESS], cwd=ROOT, env=env, check=True, timeout=120
    )
    settings: Settings = sqlite_backend.settings().model_copy(
        update={"metrics_dir": folder, "metrics_auth": "none"}
    )
    with TestClient(create_app(settings)) as client:
        samples = scrape(client)
    assert value(samples, "descent_worker_epoch_duration_seconds_count") == 2
    assert value(samples, "descent_worker_epoch_duration_seconds_sum") == pytest.approx(1.0)
    assert value(samples, "descent_worker_epoch_duration_seconds_bucket", le="0.5") == 1
    assert value(samples, "descent_worker_epochs_total") == 2
    assert value(samples, "descent_worker_resumes_total") == 1
    assert value(samples, "descent_worker_reaper_actions_total", action="requeued") == 1
    # The process has exited: its attempt no longer counts as running (its file is gone).
    assert value(samples, "descent_worker_jobs_running") in (None, 0)
    assert not list(folder.glob("gauge_live*"))


def test_open_event_streams_are_counted_while_open(sqlite_backend: Backend) -> None:
    token = make_user(sqlite_backend, "root", admin=True)
    # A stream of a queued job stays open, quiet, until its lifetime ends.
    with app_for(sqlite_backend, metrics_auth="none", events_max_seconds=3) as client:
        job_id = client.post("/v1/jobs", json=JOB, headers=bearer(token)).json()["id"]
        reader = threading.Thread(
            target=lambda: client.get(f"/v1/jobs/{job_id}/events", headers=bearer(token)),
            daemon=True,
        )
        reader.start()
        streams = ("descent_event_streams", frozenset({("source", "job")}))
        wait_for(lambda: scrape(client).get(streams) == 1, 10, what="the stream to count")
        reader.join(30)
        assert scrape(client)[streams] == 0
