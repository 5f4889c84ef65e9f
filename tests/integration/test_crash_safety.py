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
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import FAST_RECOVERY_ENV, kill_group, record_figures
from stack import TERMINAL, Stack, busy_pool, spec
from support import Backend, wait_for

from service.queue import Producer

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(backend: Backend, tmp_path: Path) -> Iterator[Stack]:
    backend.env.update(FAST_RECOVERY_ENV)
    backend.env["DESCENT_MAX_RESTARTS"] = "20"
    s = Stack(backend, tmp_path)
    yield s
    s.close()


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
