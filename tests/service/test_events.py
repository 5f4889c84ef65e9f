"""The event stream's contract (order, resume, end, heartbeats, lifetime, many streams),
on both storage/broker pairs, against a real uvicorn server. The job's progress is
written by a stand-in for the worker — the same rows and notifications a worker writes
(tests/integration/test_events_live.py runs the real one)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sse import Collector, epochs, parse, read_stream, stream
from support import Backend, bearer, make_backend, make_user, serve, wait_for

from service.db import make_engine, make_sessionmaker, utcnow
from service.jobs import events as job_events
from service.jobs.models import EpochMetric, Job
from service.live import Notifier
from service.main import create_app
from service.streams import EventHub
from service.streams import hub as hub_module
from service.streams import loop as stream_loop

SPEC = {"dataset": {"name": "moons"}, "training": {"epochs": 8}}


# Streams are read from a real uvicorn server; `backend` (tests/conftest.py) is fresh per test.
pytestmark = pytest.mark.server


@contextlib.contextmanager
def server(backend: Backend, **overrides: object) -> Iterator[tuple[httpx.Client, object]]:
    settings = backend.settings().model_copy(update=overrides)
    app = create_app(settings)
    token = make_user(backend, f"u-{time.monotonic_ns()}")
    with serve(app) as url, httpx.Client(base_url=url, headers=bearer(token)) as client:
        yield client, app


class FakeWorker:
    """Writes a job's progress as a worker does: commit, then notify."""

    def __init__(self, backend: Backend, job_id: str) -> None:
        settings = backend.settings()
        self.engine = make_engine(str(settings.database_url))
        self.sessions = make_sessionmaker(self.engine)
        self.notifier = Notifier(settings.redis_url)
        self.job_id = job_id

    def _update(self, **values: object) -> None:
        with self.sessions() as s, s.begin():
            job = s.get(Job, self.job_id)
            for k, v in values.items():
                setattr(job, k, v)
        self.notifier.job_changed(self.job_id)

    def start(self, attempt: int = 1) -> None:
        self._update(status="running", attempt=attempt, heartbeat_at=utcnow())

    def epoch(self, epoch: int, **values: float) -> None:
        with self.sessions() as s, s.begin():
            s.add(
                EpochMetric(
                    job_id=self.job_id,
                    epoch=epoch,
                    values={"train_loss": 1 / epoch, "val_loss": 1.5 / epoch, **values},
                )
            )
            s.get(Job, self.job_id).epochs_completed = epoch
        self.notifier.job_changed(self.job_id)

    def finish(self, status: str = "succeeded") -> None:
        self._update(status=status, finished_at=utcnow(), final_metrics={"val_loss": 0.1})

    def close(self) -> None:
        self.notifier.close()
        self.engine.dispose()


def submit(client: httpx.Client) -> str:
    r = client.post("/v1/jobs", json=SPEC)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def test_epochs_and_status_changes_arrive_in_order_and_the_stream_ends(backend: Backend):
    with server(backend) as (client, _):
        job_id = submit(client)
        worker = FakeWorker(backend, job_id)
        reader = Collector(stream, client, job_id)
        reader.wait_for(lambda ev: ev, "the first event")
        worker.start()
        for e in range(1, 9):
            worker.epoch(e)
            # Live: each epoch reaches the client before the next is even written.
            reader.wait_for(lambda ev, e=e: e in epochs(ev), f"epoch {e}")
        worker.finish()
        got = reader.finished()
        worker.close()
    kinds = [(e.event, e.data.get("status") or e.data.get("epoch")) for e in got]
    assert kinds == [
        ("status", "queued"),
        ("status", "running"),
        *[("epoch", n) for n in range(1, 9)],
        ("status", "succeeded"),
        ("end", "succeeded"),
    ]
    # id: the last epoch sent so far, on every event.
    assert [e.id for e in got] == [0, 0, *range(1, 9), 8, 8]
    first = got[2].data
    assert first["epochs"] == 8 and first["job_id"] == job_id
    assert set(first["metrics"]) == {"train_loss", "val_loss"} and first["recorded_at"]
    end = got[-1].data
    assert end["status"] == "succeeded" and end["final_metrics"] == {"val_loss": 0.1}


def test_a_reconnect_mid_run_gets_each_missed_epoch_exactly_once(backend: Backend):
    with server(backend) as (client, _):
        job_id = submit(client)
        worker = FakeWorker(backend, job_id)
        worker.start()
        for e in range(1, 5):
            worker.epoch(e)
        # A first connection sees epochs 1..4, then drops while the job goes on.
        with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=30) as r:
            seen = []
            for event in parse(r.iter_lines()):
                if event.event == "epoch":
                    seen.append(event.data["epoch"])
                if seen == [1, 2, 3]:
                    break
        worker.epoch(5)
        worker.epoch(6)
        by_header = Collector(stream, client, job_id, headers={"Last-Event-ID": "3"})
        by_query = Collector(stream, client, job_id, after=5)
        # The header is what a reconnecting EventSource sends; it wins over ?after=.
        both = Collector(stream, client, job_id, headers={"Last-Event-ID": "6"}, after=1)
        for c in (by_header, by_query, both):
            c.wait_for(lambda ev: 6 in epochs(ev) or ev and ev[0].id == 6, "replayed epochs")
        worker.epoch(7)
        worker.epoch(8)
        worker.finish()
        results = [c.finished() for c in (by_header, by_query, both)]
        worker.close()
    assert epochs(results[0]) == [4, 5, 6, 7, 8]
    assert epochs(results[1]) == [6, 7, 8]
    assert epochs(results[2]) == [7, 8]
    for got in results:
        assert got[-1].event == "end" and got[-1].id == 8


def test_after_the_end_a_client_gets_the_whole_history_then_the_end(backend: Backend):
    with server(backend) as (client, _):
        job_id = submit(client)
        worker = FakeWorker(backend, job_id)
        worker.start()
        for e in range(1, 9):
            worker.epoch(e)
        worker.finish("diverged")
        worker.close()
        full = list(stream(client, job_id))
        tail = list(stream(client, job_id, after=6))
        beyond = list(stream(client, job_id, headers={"Last-Event-ID": "50"}))
    # The status comes first, on connecting, for an ended job too (docs/events.md), and
    # only once: it does not change again before the end.
    assert [e.event for e in full] == ["status", *["epoch"] * 8, "end"]
    assert full[0].data["status"] == full[-1].data["status"] == "diverged"
    assert full[0].id == 0 and full[0].data["epochs_completed"] == 8
    assert epochs(full) == list(range(1, 9))
    assert [e.event for e in tail] == ["status", "epoch", "epoch", "end"]
    assert epochs(tail) == [7, 8] and tail[0].id == 6 and tail[-1].id == 8
    assert [(e.event, e.id) for e in beyond] == [("status", 50), ("end", 50)]


def test_a_cancelled_queued_job_ends_its_stream(backend: Backend):
    with server(backend) as (client, _):
        job_id = submit(client)
        reader = Collector(stream, client, job_id)
        reader.wait_for(lambda ev: ev, "the first event")
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
        got = reader.finished()
    assert [(e.event, e.data["status"]) for e in got] == [
        ("status", "queued"),
        ("status", "cancelled"),
        ("end", "cancelled"),
    ]
    assert got[-1].data["status_reason"] == "cancelled before it started"


def test_a_new_attempt_is_a_status_event(backend: Backend):
    with server(backend) as (client, _):
        job_id = submit(client)
        worker = FakeWorker(backend, job_id)
        worker.start()
        worker.epoch(1)
        reader = Collector(stream, client, job_id)
        reader.wait_for(lambda ev: 1 in epochs(ev), "epoch 1")
        worker.start(attempt=2)  # a lost worker's job resumed by another
        reader.wait_for(lambda ev: ev[-1].data.get("attempt") == 2, "attempt 2")
        worker.epoch(2)
        worker.finish()
        got = reader.finished()
        worker.close()
    statuses = [(e.data["status"], e.data["attempt"]) for e in got if e.event == "status"]
    assert statuses == [("running", 1), ("running", 2), ("succeeded", 2)]
    assert epochs(got) == [1, 2]


def test_non_finite_metrics_are_sent_as_null(sqlite_backend: Backend):
    # SQLite's JSON keeps them (workers store null since PostgreSQL refuses them).
    backend = sqlite_backend
    with server(backend) as (client, _):
        job_id = submit(client)
        worker = FakeWorker(backend, job_id)
        worker.start()
        worker.epoch(1, grad_norm=float("inf"), weight_norm=float("nan"))
        worker.finish("diverged")
        worker.close()
        got = list(stream(client, job_id))
    metrics = next(e for e in got if e.event == "epoch").data["metrics"]
    assert metrics["grad_norm"] is None and metrics["weight_norm"] is None


def test_a_long_history_is_replayed_in_batches(backend: Backend, monkeypatch):
    monkeypatch.setattr(stream_loop, "BATCH", 3)
    with server(backend) as (client, _):
        job_id = submit(client)
        worker = FakeWorker(backend, job_id)
        worker.start()
        for e in range(1, 8):
            worker.epoch(e)
        reader = Collector(stream, client, job_id)
        reader.wait_for(lambda ev: 7 in epochs(ev), "the history")
        worker.epoch(8)  # a live one after the replay
        worker.finish()  # ended with exactly a batch's multiple left: still all of them
        got = reader.finished()
        worker.close()
        # Once it has ended, its status still comes first, before the batches.
        again = list(stream(client, job_id))
    assert epochs(got) == list(range(1, 9)) and got[-1].event == "end"
    assert [e.event for e in again] == ["status", *["epoch"] * 8, "end"]
    assert again[0].data["status"] == "succeeded" and epochs(again) == list(range(1, 9))


# Two 0.2-s heartbeats must fit in a 1.5-s lifetime: not beside a busy neighbour.
@pytest.mark.serial
def test_a_quiet_stream_gets_heartbeats_and_ends_at_its_lifetime_without_an_end(
    backend: Backend,
):
    with server(backend, events_heartbeat_seconds=0.2, events_max_seconds=1.5) as (client, _):
        job_id = submit(client)
        comments: list[str] = []
        with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=30) as r:
            got = list(parse(r.iter_lines(), comments))
    assert [e.event for e in got] == ["status"]  # closed by its lifetime: no end
    assert len(comments) >= 2 and set(comments) == {": keep-alive"}


def test_a_bad_last_event_id_is_a_422_naming_it(backend: Backend):
    with server(backend) as (client, _):
        job_id = submit(client)
        for bad in ("x1", "-3", "1.5", "9" * 12):
            r = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": bad})
            assert r.status_code == 422, r.text
            assert r.json()["error"]["fields"][0]["field"] == "Last-Event-ID"
        r = client.get(f"/v1/jobs/{job_id}/events", params={"after": -1})
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "after"


def test_many_streams_share_one_poll_and_do_not_starve_the_api(backend: Backend):
    n = 100
    with server(backend) as (client, app):
        job_id = submit(client)
        worker = FakeWorker(backend, job_id)
        base = str(client.base_url)
        headers = dict(client.headers)
        threads_before = threading.active_count()

        async def follow(ac: httpx.AsyncClient, opened: asyncio.Queue) -> list[str]:
            seen: list[str] = []
            async with ac.stream("GET", f"/v1/jobs/{job_id}/events", timeout=60) as r:
                assert r.status_code == 200
                lines = r.aiter_lines()
                async for line in lines:
                    if line.startswith("event: "):
                        if not seen:
                            await opened.put(1)
                        seen.append(line.removeprefix("event: "))
            return seen

        async def main() -> tuple[list[list[str]], list[int], int]:
            limits = httpx.Limits(max_connections=n + 10)
            async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as ac:
                opened: asyncio.Queue = asyncio.Queue()
                tasks = [asyncio.create_task(follow(ac, opened)) for _ in range(n)]
                for _ in range(n):
                    await asyncio.wait_for(opened.get(), 60)
                # Every stream is open: the API still answers.
                codes = [
                    (await ac.get(path)).status_code
                    for path in (f"/v1/jobs/{job_id}", "/v1/jobs", "/healthz")
                ]
                peak_threads = threading.active_count()
                await asyncio.to_thread(worker.start)
                for e in (1, 2, 3):
                    await asyncio.to_thread(worker.epoch, e)
                await asyncio.to_thread(worker.finish)
                return await asyncio.gather(*tasks), codes, peak_threads

        results, codes, peak_threads = asyncio.run(main())
        worker.close()
        streams_left = app.state.events.streams
    assert codes == [200, 200, 200]
    # Status changes closer together than a poll may reach a stream as one; epochs never.
    for got in results:
        assert got[0] == "status" and got[-2:] == ["status", "end"], got
        assert got.count("epoch") == 3, got
    # Streams are coroutines: their reads borrow threads of the server's pool (40 at
    # most; the test's own client may hold as many to connect), not a thread each.
    assert peak_threads - threads_before < n
    assert streams_left == 0


@pytest.mark.postgres
def test_with_redis_a_notification_wakes_streams_without_the_poll(tmp_path: Path):
    backend = make_backend("postgres", tmp_path)
    try:
        # A poll once an hour: only Redis's notification can deliver these epochs.
        with server(backend, events_poll_seconds=3600) as (client, app):
            job_id = submit(client)
            worker = FakeWorker(backend, job_id)
            reader = Collector(stream, client, job_id)
            reader.wait_for(lambda ev: ev, "the first event")
            wait_for(lambda: app.state.events.listening, 10, 0.05, "the Redis subscription")
            worker.start()
            worker.epoch(1)
            reader.wait_for(lambda ev: 1 in epochs(ev), "epoch 1 via Redis")
            worker.finish()
            got = reader.finished()
            worker.close()
    finally:
        backend.close()
    assert [e.event for e in got] == ["status", "status", "epoch", "status", "end"]


def test_the_hub_runs_with_the_apps_lifespan(sqlite_backend: Backend):
    app = create_app(sqlite_backend.settings())
    token = make_user(sqlite_backend, "lifespan")
    hub = app.state.events
    assert not hub.running
    with TestClient(app, headers=bearer(token)) as client:
        assert hub.running  # started by the lifespan, before any stream
        job_id = submit(client)
        worker = FakeWorker(sqlite_backend, job_id)
        worker.finish()
        worker.close()
        # A TestClient used as a context manager runs every request on the lifespan's
        # event loop, so its streams are woken by the hub like a server's.
        got = list(stream(client, job_id))
    assert [e.event for e in got] == ["status", "end"]
    assert not hub.running and hub.streams == 0


def test_a_stream_without_the_lifespan_is_refused_before_it_starts(sqlite_backend: Backend):
    app = create_app(sqlite_backend.settings())
    token = make_user(sqlite_backend, "no-lifespan")
    with TestClient(app, headers=bearer(token)) as client:
        job_id = submit(client)
    # Not entered: the lifespan does not run, so no hub would ever wake the stream.
    bare = TestClient(app, headers=bearer(token))
    with pytest.raises(RuntimeError, match="lifespan"):
        bare.get(f"/v1/jobs/{job_id}/events")
    assert (
        TestClient(app, headers=bearer(token), raise_server_exceptions=False)
        .get(f"/v1/jobs/{job_id}/events")
        .status_code
        == 500
    )


def test_the_hub_wakes_a_watch_at_its_first_poll_and_stops_its_tasks(
    sqlite_backend: Backend, monkeypatch
):
    monkeypatch.setattr(hub_module, "POLL_CHUNK", 2)
    asked: list[list[str]] = []

    def probe(sessions: object, keys: list[str]) -> dict[str, tuple]:
        asked.append(keys)
        return {k: ("here",) for k in keys}

    engine = make_engine(str(sqlite_backend.settings().database_url))
    hub = EventHub(
        make_sessionmaker(engine),
        sources={job_events.SOURCE: job_events.versions, "probe": probe},
        poll_seconds=0.05,
        redis_url=None,
    )
    probed = [f"key-{i}" for i in range(5)]

    async def main() -> None:
        with pytest.raises(RuntimeError, match="not running"):
            async with hub.watch(str(uuid.uuid4()), source=job_events.SOURCE):
                pass
        await hub.start()
        with pytest.raises(ValueError, match="unknown event source 'sweep'"):
            async with hub.watch(str(uuid.uuid4()), source="sweep"):
                pass
        async with hub.watch(str(uuid.uuid4()), source=job_events.SOURCE) as changed:
            assert hub.streams == 1
            # The first poll finds the job (missing here) and wakes its streams.
            await asyncio.wait_for(changed.wait(), 10)
        async with contextlib.AsyncExitStack() as stack:
            woken = [
                await stack.enter_async_context(hub.watch(key, source="probe")) for key in probed
            ]
            for event in woken:
                await asyncio.wait_for(event.wait(), 10)
            assert hub.streams == len(probed)
        assert "events-poll" in {t.get_name() for t in asyncio.all_tasks()}
        await hub.stop()
        assert "events-poll" not in {t.get_name() for t in asyncio.all_tasks()}

    try:
        asyncio.run(main())
    finally:
        engine.dispose()
    assert hub.streams == 0 and not hub.running
    # A source's reader is asked at most POLL_CHUNK keys at a time, and every key.
    assert asked and all(1 <= len(keys) <= 2 for keys in asked)
    assert sorted({k for keys in asked for k in keys}) == probed


def test_my_jobs_stream_sends_each_of_my_jobs_as_it_changes_and_no_one_elses(backend: Backend):
    """GET /v1/jobs/events: one stream for a whole list of jobs, owner-scoped."""
    # Heartbeats often: a stream whose client left is noticed at its next write.
    with server(backend, events_heartbeat_seconds=0.2) as (client, app):
        before = submit(client)  # queued when the stream opens: sent at once
        other = make_user(backend, "someone-else")
        theirs = client.post("/v1/jobs", json=SPEC, headers=bearer(other)).json()["id"]
        # Its own connection, closed at the end: the stream never ends by itself.
        listener = httpx.Client(base_url=str(client.base_url), headers=client.headers)
        reader = Collector(read_stream, listener, "/v1/jobs/events")
        reader.wait_for(lambda ev: any(e.data["id"] == before for e in ev), "the open job")
        after = submit(client)  # created later: sent when it appears
        reader.wait_for(lambda ev: any(e.data["id"] == after for e in ev), "the new job")
        worker = FakeWorker(backend, before)
        worker.start()
        worker.epoch(1)
        worker.epoch(2)
        reader.wait_for(
            lambda ev: any(e.data["id"] == before and e.data["epochs_completed"] == 2 for e in ev),
            "epoch 2 of the running job",
        )
        worker.finish()
        reader.wait_for(
            lambda ev: any(e.data["id"] == before and e.data["status"] == "succeeded" for e in ev),
            "the end of the running job",
        )
        for_other = FakeWorker(backend, theirs)
        for_other.start()
        for_other.finish()
        client.post(f"/v1/jobs/{after}/cancel")
        reader.wait_for(
            lambda ev: any(e.data["id"] == after and e.data["status"] == "cancelled" for e in ev),
            "the cancelled job",
        )
        got = list(reader.events)
        worker.close()
        for_other.close()
        assert app.state.events.streams >= 1
        listener.close()
        wait_for(lambda: app.state.events.streams == 0, 10, 0.05, "the stream to be let go")
    assert all(e.event == "job" for e in got)
    assert theirs not in {e.data["id"] for e in got}
    states = [(e.data["status"], e.data["epochs_completed"]) for e in got if e.data["id"] == before]
    # Each change once, in order (an epoch may be folded into the next read).
    assert states[0] == ("queued", 0) and states[-1][0] == "succeeded"
    assert states == sorted(set(states), key=states.index)
    first = got[0].data
    assert first["name"] and first["spec"]["training"]["epochs"] == 8 and "links" in first
