"""`descent workers`: the fleet's tables and its JSON. The answer the fake API sends is the
real API's, taken from an in-process app over a database with a ready, a lost and a stopped
worker, so the CLI reads exactly what the server writes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fleet_rows import add_worker, set_job
from support import Backend, bearer, make_user
from typer.testing import CliRunner

from service.cli import app
from service.cli.fleet import age
from service.db import utcnow

runner = CliRunner()
#: A name a markup parser would eat: the table must print it as written.
MARKUP_NAME = "digits [bold]wide[/] net"


@pytest.fixture
def fleet_answer(api: TestClient, sqlite_backend: Backend) -> dict[str, Any]:
    """``GET /v1/workers`` as the API answers an admin, over a small fleet."""
    url = str(sqlite_backend.settings().database_url)
    queue = sqlite_backend.settings().queue
    admin = bearer(make_user(sqlite_backend, "root", admin=True))
    job = api.post("/v1/jobs", json={"name": MARKUP_NAME, "dataset": {"name": "moons"}}).json()
    api.post("/v1/jobs", json={"dataset": {"name": "moons"}})  # waits in the queue
    set_job(url, job["id"], status="running", epochs_completed=4)
    now = utcnow()
    cuda = [{"name": "NVIDIA A10", "kind": "cuda", "memory_bytes": 24 << 30}]
    add_worker(
        url,
        "gpu-a:41",
        queue=queue,
        running=[job["id"]],
        devices=cuda,
        cuda_version="12.4",
        torch_threads=6,
    )
    add_worker(url, "gpu-b:42", queue=queue, heartbeat_at=now - timedelta(minutes=3))
    add_worker(url, "cpu-c:43", queue=queue, state="stopped", stopped_at=now)
    add_worker(
        url,
        "cpu-d:44",
        queue=queue,
        state="stopped",
        heartbeat_at=now - timedelta(days=3),
        stopped_at=now - timedelta(days=3),
    )
    r = api.get("/v1/workers", headers=admin)
    assert r.status_code == 200, r.text
    return r.json()


def test_workers_prints_each_worker_and_the_queues(fake_api, fleet_answer) -> None:  # noqa: ANN001
    seen = fake_api({("GET", "/v1/workers"): fleet_answer})
    result = runner.invoke(app, ["workers"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = lines[0].split()
    assert header == [
        "WORKER",
        "STATE",
        "QUEUE",
        "DEVICE",
        "TORCH",
        "THREADS",
        "CONC",
        "RUNNING",
        "HEARTBEAT",
    ]
    rows = {line.split()[0]: line for line in lines[1:4]}
    assert set(rows) == {"gpu-a:41", "gpu-b:42", "cpu-c:43"}
    ready = rows["gpu-a:41"]
    assert " ready " in ready and "cuda NVIDIA A10 (24.0 GiB)" in ready and "cu12.4" in ready
    assert f"{MARKUP_NAME} ({fleet_answer['workers'][0]['running'][0]['id'][:8]}) 4/20" in ready
    assert " lost " in rows["gpu-b:42"] and "3m0" in rows["gpu-b:42"]
    assert " stopped " in rows["cpu-c:43"]
    # The queue table: the API's queue holds both messages; one job waits in the database.
    queue = fleet_answer["queues"][0]["name"]
    [queue_line] = [line for line in lines if line.startswith(queue)]
    assert queue_line.split()[:3] == [queue, "2", "1"]
    assert "1 more not shown" in result.stderr and "--all" in result.stderr
    assert seen[0].url.params.get("all") is None


def test_workers_json_is_the_apis_answer_and_filters_are_sent(fake_api, fleet_answer) -> None:  # noqa: ANN001
    seen = fake_api({("GET", "/v1/workers"): fleet_answer})
    result = runner.invoke(app, ["workers", "--json", "--state", "lost,ready", "--all"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == fleet_answer
    assert (seen[0].url.params["state"], seen[0].url.params["all"]) == ("lost,ready", "true")


def test_a_broker_that_was_not_asked_shows_a_question_mark(fake_api, fleet_answer) -> None:  # noqa: ANN001
    for q in fleet_answer["queues"]:
        q.update(depth=None, broker_error="OperationalError: Connection refused")
    fake_api({("GET", "/v1/workers"): fleet_answer | {"broker_reachable": False}})
    result = runner.invoke(app, ["workers"])
    assert result.exit_code == 0, result.output
    queue = fleet_answer["queues"][0]["name"]
    [queue_line] = [line for line in result.stdout.splitlines() if line.startswith(queue)]
    assert queue_line.split()[1] == "?"
    assert "Connection refused" in result.stderr


def test_a_user_who_is_not_an_admin_is_told_so(fake_api) -> None:  # noqa: ANN001
    refused = {
        "error": {
            "status": 403,
            "code": "forbidden",
            "message": "this needs an admin's token; user 'ada' is not an admin",
        }
    }

    def forbid(request: Any) -> Any:
        import httpx

        return httpx.Response(403, json=refused)

    fake_api({("GET", "/v1/workers"): forbid})
    result = runner.invoke(app, ["workers"])
    assert result.exit_code == 1
    assert "needs an admin's token" in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0.4, "0s"),
        (59, "59s"),
        (185, "3m05s"),
        (7800, "2h10m"),
        (3 * 86400 + 4000, "3d1h"),
    ],
)
def test_ages_read_at_a_glance(seconds: float | None, shown: str) -> None:
    assert age(seconds) == shown


def test_help_says_who_may_ask_and_what_lost_means() -> None:
    result = runner.invoke(app, ["workers", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for words in ("admins only", "--state", "--all", "--json", "DESCENT_LEASE_SECONDS", "lost"):
        assert words in text, words
    listing = " ".join(runner.invoke(app, ["--help"]).output.split())
    assert "workers The workers, what each runs, and the queues (admins only)." in listing
