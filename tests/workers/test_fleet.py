"""The fleet registry (workers/fleet.py) and what the reaper and ``/readyz`` make of it, on
both storage/broker pairs, without worker processes (tests/integration/test_crash_safety.py
runs the same with real ones): a worker's row from start to stop, the jobs whose message a
gone worker held re-sent at once to their own queue, an empty queue beside waiting jobs
refilled, and readiness that waits for a ready worker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from job_rows import new_job
from sqlalchemy import update
from support import Backend, wait_for

from service.config import Settings
from service.db import utcnow
from service.fleet.liveness import LOST, READY, STOPPED, ready_on, state_of
from service.fleet.models import Worker
from service.jobs import lifecycle
from service.jobs.models import Job
from service.jobs.states import JobStatus
from service.main import create_app
from service.queue import Producer, queue_depth, sender
from workers import fleet
from workers.reaper import BrokerWatch, reap_once


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return backend.settings().model_copy(
        update={"heartbeat_seconds": 0.2, "lease_seconds": 2.0, "redispatch_seconds": 3600.0}
    )


def worker_row(sessions, wid: str, **values) -> None:  # noqa: ANN001
    """A worker's row as its registry leaves it, then ``values`` (an old heartbeat …)."""
    fleet.register(sessions, wid=wid, queue="q", concurrency=1)
    fleet.beat(sessions, wid=wid, state=READY)
    if values:
        with sessions() as s, s.begin():
            s.execute(update(Worker).where(Worker.id == wid).values(**values))


def held(sessions, wid: str, **values) -> str:  # noqa: ANN001
    job_id = new_job(sessions, **values)
    with sessions() as s, s.begin():
        assert lifecycle.hold(s, job_id=job_id, dispatch=1, worker=wid, now=utcnow())
    return job_id


def test_a_worker_registers_heartbeats_and_says_it_stopped(sessions, settings):
    registry = fleet.Registry(settings, concurrency=2)
    registry.start()
    try:
        with sessions() as s:
            row = s.get(Worker, registry.wid)
            assert row is not None
            assert (row.state, row.queue, row.concurrency) == ("starting", settings.queue, 2)
            first_beat = row.heartbeat_at
            assert not ready_on(s, queue=settings.queue, now=utcnow(), lease_seconds=2.0)
        registry.set_state(READY)
        # A pool process adds its devices and torch's facts to its parent's row.
        facts = {"devices": [{"name": "cpu", "kind": "cpu"}], "torch_threads": 1}
        assert fleet.report_process(sessions, wid=registry.wid, facts=facts)

        def beaten() -> Worker | None:
            with sessions() as s:
                row = s.get(Worker, registry.wid)
                return row if row is not None and row.heartbeat_at > first_beat else None

        row = wait_for(beaten, 10, what="a heartbeat")
        assert row.state == READY and row.running == [] and row.devices == facts["devices"]
        with sessions() as s:
            assert ready_on(s, queue=settings.queue, now=utcnow(), lease_seconds=2.0)
            assert not ready_on(s, queue="another", now=utcnow(), lease_seconds=2.0)
            # Silent for a lease period: lost (derived, never stored).
            later = utcnow() + timedelta(seconds=5)
            assert state_of(row, later, 2.0) == LOST
            assert not ready_on(s, queue=settings.queue, now=later, lease_seconds=2.0)
    finally:
        registry.stop()
    with sessions() as s:
        row = s.get(Worker, registry.wid)
        assert row is not None and row.state == STOPPED and row.stopped_at is not None
        assert state_of(row, utcnow() + timedelta(hours=1), 2.0) == STOPPED
        assert not ready_on(s, queue=settings.queue, now=utcnow(), lease_seconds=2.0)


def test_a_job_whose_holder_is_gone_is_sent_again_at_once_to_its_own_queue(sessions, settings):
    sent: list[tuple[str, int, str | None]] = []
    now = utcnow()
    gone = {
        "lost": {"heartbeat_at": now - timedelta(seconds=10)},
        "stopped": {"state": STOPPED, "stopped_at": now},
        # Same host and pid, started again after it received the message.
        "restarted": {"started_at": now + timedelta(seconds=1)},
    }
    stranded = []
    for pid, values in enumerate(gone.values(), start=101):
        worker_row(sessions, f"h:{pid}", **values)
        stranded.append(held(sessions, f"h:{pid}", queue="gpu"))
    stranded.append(held(sessions, "h:999", queue="gpu"))  # never registered
    worker_row(sessions, "h:100")
    alive = held(sessions, "h:100", queue="gpu")
    fresh = new_job(sessions, queue="gpu")  # sent just now, held by no one yet

    counts = reap_once(sessions, settings, lambda j, d, q=None: sent.append((j, d, q)))
    assert counts["resent"] == 4 and counts["redispatched"] == 0
    assert sorted(sent) == sorted((j, 2, "gpu") for j in stranded)
    with sessions() as s:
        for job_id in stranded:
            job = s.get(Job, job_id)
            assert job is not None and job.held_by is None and job.dispatch == 2
        job = s.get(Job, alive)
        assert job is not None and (job.held_by, job.dispatch) == ("h:100", 1)
        assert s.get(Job, fresh).dispatch == 1  # type: ignore[union-attr]
    # The new message is the current one: the held copy is a leftover, and nothing is
    # sent twice.
    assert reap_once(sessions, settings, lambda j, d, q=None: sent.append((j, d, q)))["resent"] == 0
    assert len(sent) == 4


def test_an_empty_queue_beside_a_waiting_job_is_refilled(sessions, settings):
    """Real brokers: a job last sent more than a lease ago, held by no one, whose queue is
    empty (its message lost) is sent again to its queue; once the queue holds it, or for
    a job sent just now, nothing more is sent."""
    producer = Producer(settings)
    watch = BrokerWatch(producer.app)
    send = sender(producer.app, settings.queue)
    queue = f"{settings.queue}-b"
    old = utcnow() - timedelta(seconds=settings.lease_seconds + 1)
    lost = new_job(sessions, queue=queue, dispatched_at=old)
    recent = new_job(sessions, queue=queue)
    assert queue_depth(producer.app, queue) == 0
    counts = reap_once(sessions, settings, send, broker=watch)
    assert counts["resent"] == 1
    assert queue_depth(producer.app, queue) == 1  # on the job's queue, not the reaper's
    assert queue_depth(producer.app, settings.queue) == 0
    with sessions() as s:
        assert s.get(Job, lost).dispatch == 2  # type: ignore[union-attr]
        assert s.get(Job, recent).dispatch == 1  # type: ignore[union-attr]
    # Its message waits in the queue now: another pass leaves it be, even once old.
    with sessions() as s, s.begin():
        s.execute(update(Job).where(Job.id == lost).values(dispatched_at=old))
    assert reap_once(sessions, settings, send, broker=watch)["resent"] == 0
    # The same broker all along: no restart seen.
    assert watch.restarted() is False


def test_readyz_waits_for_a_ready_worker_on_the_apis_queue(backend, sessions, settings):
    needs = settings.model_copy(update={"ready_needs_worker": True})
    with TestClient(create_app(needs)) as client:
        r = client.get("/readyz")  # public, like /healthz
        assert r.status_code == 503, r.text
        body = r.json()
        assert (body["database"], body["broker"], body["worker"]) == ("ok", "ok", "missing")
        assert f"no worker on queue '{settings.queue}' is ready" in body["error"]["message"]
        # Registered but not ready yet, or ready on another queue: still not ready.
        fleet.register(sessions, wid="h:1", queue=settings.queue, concurrency=1)
        worker_row(sessions, "h:2")
        assert client.get("/readyz").status_code == 503
        assert fleet.beat(sessions, wid="h:1", state=READY)
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json()["worker"] == "ready", r.text
        # Gone silent: not ready again.
        stale = utcnow() - timedelta(seconds=settings.lease_seconds + 1)
        with sessions() as s, s.begin():
            s.execute(update(Worker).where(Worker.id == "h:1").values(heartbeat_at=stale))
        assert client.get("/readyz").json()["worker"] == "missing"
        assert client.get("/healthz").status_code == 200  # liveness needs no worker
    with TestClient(create_app(settings)) as client:
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json()["worker"] == "not required", r.text


def test_a_received_message_is_held_off_the_consumers_thread(sessions, settings):
    """``Registry.hold`` as the task_received handler calls it: written in the background;
    a leftover copy (an older dispatch) holds nothing."""
    registry = fleet.Registry(settings, concurrency=1)
    registry.start()
    try:
        job_id = new_job(sessions, dispatch=2)
        registry.hold(job_id, 1)
        registry.hold(job_id, 2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with sessions() as s:
                job = s.get(Job, job_id)
                assert job is not None
                if job.held_by is not None:
                    break
            time.sleep(0.05)
        assert (job.held_by, job.status) == (registry.wid, JobStatus.QUEUED)
    finally:
        registry.stop()
