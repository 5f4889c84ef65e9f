"""The database gate (service/gate.py): one thread call per request's database work, a
bounded wait for a turn (503 with Retry-After past it), requests of departed clients
dropped, a pool timeout answered 503, and /healthz never queued behind the load.

In-process on a real SQLite file and SQL broker; the load itself (hundreds of
concurrent clients on a real server, both backends) is tests/integration/test_load.py.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from support import Backend, bearer, make_user, wait_for

from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.gate import Busy, DatabaseGate
from service.main import create_app


def all_routes(app: Any) -> list[Any]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI: routes are flat already
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def test_no_route_or_dependency_waits_for_the_thread_pool(sqlite_backend: Backend) -> None:
    # A plain `def` route or dependency runs in the shared thread pool; one that held a
    # connection while the next waited for a thread is the deadlock this design removes.
    app = create_app(sqlite_backend.settings())
    found = []

    def walk(dependant: Any, path: str) -> None:
        for sub in dependant.dependencies:
            walk(sub, path)
        call = dependant.call
        if call is not None:
            target = call if inspect.isfunction(call) else type(call).__call__
            if not inspect.iscoroutinefunction(target):
                found.append(f"{path}: {getattr(call, '__qualname__', call)}")

    routes = [r for r in all_routes(app) if hasattr(r, "dependant")]
    assert len(routes) >= 30
    for route in routes:
        walk(route.dependant, route.path)
    assert not found, found


@contextmanager
def client_for(backend: Backend, **settings: Any) -> Iterator[TestClient]:
    token = make_user(backend, "tester")
    config = backend.settings().model_copy(update=settings)
    with TestClient(
        create_app(config), headers=bearer(token), raise_server_exceptions=False
    ) as client:
        yield client


@contextmanager
def gate_held(client: TestClient) -> Iterator[None]:
    """Every turn of the app's gate taken by work that waits until the block ends."""
    gate: DatabaseGate = client.app.state.gate
    release = threading.Event()
    started = threading.Semaphore(0)

    def hold(session: Any) -> None:
        session.execute(text("SELECT 1"))
        started.release()
        release.wait(30)

    futures = [client.portal.start_task_soon(gate.run, hold) for _ in range(gate.capacity)]
    try:
        for _ in futures:
            assert started.acquire(timeout=30)
        yield
    finally:
        release.set()
        for future in futures:
            future.result(30)


def statements(client: TestClient) -> list[str]:
    """Every SQL statement the app runs from now on, as it is sent."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(client.app.state.engine, "before_cursor_execute", record)
    return seen


def test_a_request_that_waits_past_its_turn_is_answered_503(sqlite_backend: Backend) -> None:
    with client_for(sqlite_backend, db_pool_size=2, db_queue_seconds=0.2) as client:
        job_id = client.post("/v1/jobs", json={}).json()["id"]
        with gate_held(client):
            r = client.get(f"/v1/jobs/{job_id}/metrics")
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "2"
            assert r.json()["error"]["code"] == "unavailable"
            assert "DESCENT_DB_QUEUE_SECONDS" in r.json()["error"]["message"]
            # Health has an engine and threads of its own: the full gate does not delay it.
            h = client.get("/healthz")
            assert h.status_code == 200, h.text
        # The turns came back: the same request is served.
        assert client.get(f"/v1/jobs/{job_id}/metrics").status_code == 200
        assert client.app.state.engine.pool.checkedout() == 0


def test_the_gate_refuses_past_its_wait_and_serves_once_free(sqlite_backend: Backend) -> None:
    engine = make_engine(str(sqlite_backend.settings().database_url), pool_size=1)
    gate = DatabaseGate(make_sessionmaker(engine), capacity=1, wait_seconds=0.1)
    release = threading.Event()

    def hold(session: Any) -> None:
        session.execute(text("SELECT 1"))
        release.wait(30)

    def answer(session: Any) -> int:
        return session.execute(text("SELECT 41 + 1")).scalar_one()

    async def main() -> tuple[bool, int]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(gate.run, hold)
            while not gate.admitted:
                await anyio.sleep(0.01)
            try:
                await gate.run(answer)
            except Busy:
                refused = True
            else:
                refused = False
            release.set()
        return refused, await gate.run(answer)

    try:
        refused, value = anyio.run(main)
    finally:
        release.set()
        engine.dispose()
    assert (refused, value) == (True, 42)


@pytest.mark.parametrize("auth", ["token", "none"])  # refused by the middleware, by a route
def test_a_pool_timeout_is_a_503_never_a_500(sqlite_backend: Backend, auth: str) -> None:
    # Every connection of the pool taken behind the gate's back (only a bug could do it):
    # the thread's wait for one ends after DESCENT_DB_POOL_TIMEOUT_SECONDS.
    with client_for(
        sqlite_backend, db_pool_size=1, db_pool_timeout_seconds=0.1, auth=auth
    ) as client:
        engine = client.app.state.engine
        held = [engine.connect() for _ in range(engine.pool.size())]
        try:
            r = client.get("/v1/jobs")
        finally:
            for conn in held:
                conn.close()
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"]
        assert r.json()["error"]["code"] == "unavailable", r.text
        assert client.get("/v1/jobs").status_code == 200


class RawRequest:
    """An ASGI request whose client leaves before the answer (or while it waits)."""

    def __init__(self, client: TestClient, path: str) -> None:
        self.client = client
        self.path = path
        self.messages: list[dict[str, Any]] = []

    def scope(self) -> dict[str, Any]:
        headers = [(k.lower().encode(), v.encode()) for k, v in self.client.headers.items()]
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [*headers, (b"host", b"testserver")],
            "client": ("testclient", 50000),
            "server": ("testserver", 80),
        }

    async def __call__(self, gone: anyio.Event) -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if not gone.is_set():  # as uvicorn: a departed client is news at once
                await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            self.messages.append(message)

        await self.client.app(self.scope(), receive, send)

    @property
    def status(self) -> int:
        return next(m["status"] for m in self.messages if m["type"] == "http.response.start")


def test_a_departed_client_gets_no_database_work(sqlite_backend: Backend) -> None:
    with client_for(sqlite_backend) as client:
        job_id = client.post("/v1/jobs", json={}).json()["id"]
        seen = statements(client)
        request = RawRequest(client, f"/v1/jobs/{job_id}/metrics")

        async def left_at_once() -> None:
            gone = anyio.Event()
            gone.set()
            await request(gone)

        client.portal.call(left_at_once)
        assert request.status == 499
        # Without a body, the middleware asks before its token lookup: no SQL at all.
        assert not seen, seen


def test_a_queued_request_whose_client_left_is_dropped(sqlite_backend: Backend) -> None:
    # DESCENT_AUTH=none: no middleware, so the request's first call is the caller's lookup.
    with client_for(sqlite_backend, db_pool_size=1, auth="none") as client:
        job_id = client.post("/v1/jobs", json={}).json()["id"]
        gate: DatabaseGate = client.app.state.gate
        request = RawRequest(client, f"/v1/jobs/{job_id}/attempts")
        with gate_held(client):
            seen = statements(client)
            gone = client.portal.call(anyio.Event)
            future = client.portal.start_task_soon(request, gone)
            wait_for(lambda: client.portal.call(lambda: gate.waiting) == 1, 10, 0.02, "a queue")
            client.portal.call(gone.set)
        future.result(30)
        assert request.status == 499
        assert seen == []  # neither the caller's lookup nor the route's work ran
        assert client.get(f"/v1/jobs/{job_id}/attempts").status_code == 200


def test_healthz_still_tells_the_truth_about_a_database_that_is_down(tmp_path: Path) -> None:
    (tmp_path / "db-is-a-dir").mkdir()
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db-is-a-dir'}")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        h = client.get("/healthz")
    assert h.status_code == 503
    body = json.loads(h.text)
    assert (body["database"], body["status"]) == ("unreachable", "unavailable")
