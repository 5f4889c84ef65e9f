"""Nothing lost: real worker processes killed, frozen, handed duplicates and cancelled,
on both storage/broker pairs (SQLite + the SQL broker, PostgreSQL + Redis).

Each test checks the end state a user relies on — every job ends in a true terminal
state, each epoch's metrics appear exactly once — and records what it injected for
docs/reliability.md (see tests/faults.py).
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import FAST_RECOVERY_ENV, kill_group, record_figures
from stack import TERMINAL, Stack, busy_pool, spec
from support import Backend, Worker, wait_for

from service.db import utcnow
from service.fleet.liveness import LOST, READY, state_of
from service.fleet.models import Worker as WorkerRow
from service.queue import Producer

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(backend: Backend, tmp_path: Path) -> Iterator[Stack]:
    backend.env.update(FAST_RECOVERY_ENV)
    backend.env["DESCENT_MAX_RESTARTS"] = "20"
    s = Stack(backend, tmp_path)
    yield s
    s.close()


@pytest.fixture
def fleet_stack(backend: Backend, tmp_path: Path) -> Iterator[Stack]:
    backend.env.update(FAST_RECOVERY_ENV)
    # The timer that was once the only way out, far beyond the test: whatever runs a
    # stranded job here is the fleet's recovery.
    backend.env["DESCENT_REDISPATCH_SECONDS"] = "3600"
    backend.env["DESCENT_READY_NEEDS_WORKER"] = "1"
    s = Stack(backend, tmp_path)
    yield s
    s.close()


def worker_row(stack: Stack, worker: Worker) -> WorkerRow | None:
    with stack.sessions() as s:
        return s.get(WorkerRow, f"{socket.gethostname()}:{worker.proc.pid}")


def pool_reported(stack: Stack, worker: Worker) -> bool:
    """Its pool process is up and wrote its device into the worker's row."""
    row = worker_row(stack, worker)
    return row is not None and bool(row.devices) and row.torch_version is not None


def test_killed_workers_jobs_resume_from_their_checkpoints(stack: Stack):
    """SIGKILL at random points of a 30-epoch job, three times (``DESCENT_CHAOS_KILLS``;
    the reliability benchmark kills more): the pool process alone (Celery redelivers the
    message) or the whole worker (the reaper recovers the job), in turn."""
    rng = random.Random(os.environ.get("DESCENT_CHAOS_SEED", "3"))
    epochs, kills = 30, int(os.environ.get("DESCENT_CHAOS_KILLS", "3"))
    worker = stack.start_worker()
    job_id = stack.submit(spec(epochs))
    at_kill: list[int] = []
    targets = sorted(rng.sample(range(2, epochs - 3), kills))
    for i, target in enumerate(targets):
        job = stack.wait(
            job_id,
            lambda j, t=target: j.status == "running" and j.epochs_completed >= t,
            what=f"epoch {target}",
        )
        if job.epochs_completed >= epochs - 1:
            break
        attempt = job.attempt
        at_kill.append(job.epochs_completed)
        if i % 2 == 0:
            os.kill(busy_pool(worker), signal.SIGKILL)  # Celery starts a new pool process
        else:
            kill_group(worker.proc.pid)  # worker and pool gone: a new worker comes up
            worker.stop()
            worker = stack.start_worker()
        stack.wait(
            job_id,
            lambda j, a=attempt: j.attempt > a and j.status == "running",
            what="the next attempt",
        )

    job = stack.wait_terminal(job_id)
    assert job.status == "succeeded", (job.status_reason, stack.logs())
    seen = stack.epochs(job_id)
    assert seen == list(range(1, epochs + 1))  # every epoch, exactly once, in order
    attempts = stack.attempts(job_id)
    assert len(attempts) == len(at_kill) + 1
    assert [a.outcome for a in attempts] == ["lost"] * len(at_kill) + ["succeeded"]
    resumed = [a.resumed_from_epoch for a in attempts[1:]]
    # Each new attempt resumed from the last recorded epoch (or the one being recorded
    # as it died), never from the start.
    for killed_at, start in zip(at_kill, resumed, strict=True):
        assert killed_at <= start <= killed_at + 1, (at_kill, resumed)
    assert not (stack.backend.settings().jobs_dir / job_id / "checkpoint.pt").exists()
    record_figures(
        "kill -9 during training",
        backend=stack.backend.name,
        faults=len(at_kill),
        jobs=1,
        completed=1,
        epochs=epochs,
        duplicates=len(seen) - len(set(seen)),
        lost=epochs - len(set(seen)),
        epochs_rerun=[max(0, k - r) for k, r in zip(at_kill, resumed, strict=True)],
    )


def test_a_duplicate_is_dropped_and_a_stale_attempt_is_fenced_out(stack: Stack):
    """Two workers. The same message delivered again while the job runs is dropped; an
    attempt frozen past its lease is taken over, and when it wakes its writes are
    refused and it stops."""
    first = stack.start_worker()
    second = stack.start_worker()
    job_id = stack.submit(spec(14))
    job = stack.wait(job_id, lambda j: j.epochs_completed >= 1, what="epoch 1")
    Producer(stack.backend.settings()).enqueue_training(job_id, job.dispatch)
    wait_for(lambda: "duplicate message dropped" in stack.logs(), 30, what="the duplicate dropped")
    assert stack.row(job_id).attempt == 1

    holder = next(w for w in (first, second) if (job.worker or "").endswith(f":{busy_pool(w)}"))
    frozen = busy_pool(holder)
    os.kill(frozen, signal.SIGSTOP)
    try:
        stack.wait(job_id, lambda j: j.attempt == 2 and j.status == "running", what="takeover")
    finally:
        os.kill(frozen, signal.SIGCONT)
    # Awake, the stale attempt stops at its next write (refused by the fence) or at its
    # next batch (its lease watcher saw the takeover first): either way it says so.
    stopped = re.compile(rf"job {job_id} attempt 1 stopped: .*(refused|took over)")
    wait_for(lambda: stopped.search(holder.output()), 30, what="the stale attempt to stop")
    job = stack.wait_terminal(job_id)
    assert job.status == "succeeded", (job.status_reason, stack.logs())
    seen = stack.epochs(job_id)
    assert seen == list(range(1, 15))
    assert [a.outcome for a in stack.attempts(job_id)] == ["superseded", "succeeded"]
    record_figures(
        "duplicate delivery and a frozen attempt",
        backend=stack.backend.name,
        faults=2,
        jobs=1,
        completed=1,
        duplicates=len(seen) - len(set(seen)),
        lost=14 - len(set(seen)),
    )


def test_cancel_is_prompt_durable_and_never_resumed(stack: Stack):
    worker = stack.start_worker()
    running = stack.submit(spec(40))
    queued = stack.submit(spec(40))  # behind the first: one worker, one job at a time
    stack.wait(running, lambda j: j.epochs_completed >= 1, what="epoch 1")

    r = stack.client.post(f"/v1/jobs/{queued}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    r = stack.client.post(f"/v1/jobs/{running}/cancel")
    assert r.status_code == 202
    job = stack.wait(running, lambda j: j.status in TERMINAL, timeout=10, what="cancel")
    assert job.status == "cancelled" and job.epochs_completed < 40

    # Durable: the cancel is asked while the worker is frozen, then the worker dies.
    third = stack.submit(spec(40))
    job = stack.wait(third, lambda j: j.epochs_completed >= 1, what="epoch 1 of the third")
    pool = busy_pool(worker)
    os.kill(pool, signal.SIGSTOP)
    assert stack.client.post(f"/v1/jobs/{third}/cancel").status_code == 202
    done_epochs = stack.row(third).epochs_completed
    kill_group(worker.proc.pid)
    worker.stop()
    stack.start_worker()
    job = stack.wait_terminal(third, timeout=60)
    assert job.status == "cancelled", job.status_reason
    assert job.epochs_completed == done_epochs and len(stack.attempts(third)) == 1
    assert stack.row(queued).attempt == 0  # the queued one never started
    record_figures(
        "cancel (queued, running, worker killed)",
        backend=stack.backend.name,
        faults=1,
        jobs=3,
        completed=3,
        resurrected=0,
    )


def test_a_message_held_by_a_worker_killed_before_its_pool_started_runs_on_another(
    fleet_stack: Stack,
):
    """The start-up kill: a worker's main process has received a job's message, its pool
    has not started it (frozen here), and the worker is SIGKILLed. The message is gone
    with it (Redis's unacked set, the SQL broker's invisible row); the reaper of an idle
    second worker sees the holder lost and re-sends the job at once — within a lease
    period and a reaper pass, long before DESCENT_REDISPATCH_SECONDS (an hour here).
    ``/readyz`` says 503 until a worker is ready, 200 after."""
    stack = fleet_stack
    r = stack.client.get("/readyz")
    assert r.status_code == 503 and r.json()["worker"] == "missing", r.text
    holder = stack.start_worker()
    wait_for(lambda: pool_reported(stack, holder), 60, what="the holder's pool process")
    time.sleep(1)  # the pool process tells its parent it is up just after reporting
    os.kill(busy_pool(holder), signal.SIGSTOP)
    r = wait_for(lambda: (r := stack.client.get("/readyz")).status_code == 200 and r, 30)
    assert r.json() == {"status": "ok", "database": "ok", "broker": "ok", "worker": "ready"}

    job_id = stack.submit(spec(3))
    holder_id = f"{socket.gethostname()}:{holder.proc.pid}"
    stack.wait(job_id, lambda j: j.held_by == holder_id, timeout=30, what="the message held")
    other = stack.start_worker()
    wait_for(lambda: pool_reported(stack, other), 60, what="the second pool process")
    assert stack.row(job_id).status == "queued"  # its message is with the frozen holder
    kill_group(holder.proc.pid)
    killed_at = utcnow()
    job = stack.wait(job_id, lambda j: j.status != "queued", timeout=60, what="a new start")
    assert job.dispatch == 2, job.dispatch  # re-sent once, by the fleet's recovery
    recovered_s = (job.started_at - killed_at).total_seconds()  # type: ignore[operator]
    job = stack.wait_terminal(job_id)
    assert job.status == "succeeded", (job.status_reason, stack.logs())
    assert stack.epochs(job_id) == [1, 2, 3]
    [attempt] = stack.attempts(job_id)
    assert attempt.worker.endswith(f":{busy_pool(other)}")
    assert f"the worker {holder_id} holding its message is gone" in other.output()
    row = worker_row(stack, holder)
    assert row is not None and state_of(row, utcnow(), 3.0) == LOST
    row = worker_row(stack, other)
    assert (
        row is not None and row.state == READY and row.devices == [{"name": "cpu", "kind": "cpu"}]
    )
    assert row.torch_threads == 1  # DESCENT_TORCH_THREADS of the test workers
    holder.stop()
    record_figures(
        "worker killed between receiving a message and starting it",
        backend=stack.backend.name,
        faults=1,
        jobs=1,
        completed=1,
        duplicates=0,
        lost=0,
        recovered_seconds=round(recovered_s, 1),
    )


@pytest.mark.postgres
def test_a_recovered_job_goes_back_to_its_own_queue(postgres_backend: Backend, tmp_path: Path):
    """Two pools, two queues: a job of queue B whose worker is killed is requeued by the
    reaper of the worker on queue A — to queue B, where A never takes it — and runs on
    B's next worker."""
    from fastapi.testclient import TestClient

    from service.main import create_app
    from service.queue import queue_depth

    backend = postgres_backend
    backend.env.update(FAST_RECOVERY_ENV)
    backend.env["DESCENT_REDISPATCH_SECONDS"] = "3600"
    queue_a = backend.env["DESCENT_QUEUE"]
    queue_b = f"{queue_a}-b"
    stack = Stack(backend, tmp_path)
    b_api = TestClient(create_app(backend.settings().model_copy(update={"queue": queue_b})))
    b_api.headers.update(stack.client.headers)
    producer = Producer(backend.settings())
    try:
        on_a = stack.start_worker()
        backend.env["DESCENT_QUEUE"] = queue_b  # the workers started from now on
        on_b = stack.start_worker()
        r = b_api.post("/v1/jobs", json=spec(20))
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        stack.wait(job_id, lambda j: j.epochs_completed >= 1, what="epoch 1 on B")
        assert stack.row(job_id).queue == queue_b
        kill_group(on_b.proc.pid)
        on_b.stop()
        stack.wait(job_id, lambda j: j.status == "queued" and j.dispatch == 2, what="requeued")
        wait_for(lambda: queue_depth(producer.app, queue_b) == 1, 10, what="its message on B")
        assert queue_depth(producer.app, queue_a) == 0
        assert f"job {job_id}: worker of attempt 1 lost" in on_a.output()
        next_b = stack.start_worker()
        job = stack.wait_terminal(job_id)
        assert job.status == "succeeded", (job.status_reason, stack.logs())
        attempts = stack.attempts(job_id)
        assert [a.outcome for a in attempts] == ["lost", "succeeded"]
        assert attempts[1].worker.endswith(f":{busy_pool(next_b)}")
        assert stack.epochs(job_id) == list(range(1, 21))
    finally:
        b_api.close()
        stack.close()
