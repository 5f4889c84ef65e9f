"""A stopping worker's attempts (workers/stopping.py): where an attempt ends once the
worker is asked to stop, and the hand back through the real runner on both backends —
the job queued again with a new message, resumed by the next attempt from its checkpoint
to exactly the numbers of an uninterrupted run, every epoch recorded once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import job_rows
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from support import IN_PROCESS_WORKER, ROOT, Backend

from service.config import Settings
from service.jobs import lifecycle
from service.jobs.models import EpochMetric, Job, JobAttempt
from service.jobs.states import JobStatus
from service.spec import JobSpec
from workers import runner, stopping
from workers.stopping import GracefulStop

EPOCHS = 5
SPEC = JobSpec.model_validate(
    {
        "dataset": {"name": "iris"},
        "model": {"kind": "mlp", "hidden": [8]},
        "training": {"epochs": EPOCHS, "batch_size": 16},
    }
).model_dump(mode="json")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_stop_waits_for_an_epoch_due_soon_and_not_for_one_due_late() -> None:
    clock, stop = Clock(), [False]
    graceful = GracefulStop(5.0, clock=clock, stopping=lambda: stop[0])
    assert not graceful.now() and not graceful.after_epoch()  # not stopping: carry on
    clock.now += 4.0
    graceful.epoch_recorded()  # epochs take 4 s
    clock.now += 1.0
    stop[0] = True
    # 3 s of the epoch left, within the 5 s it may wait: finish it, then hand back.
    assert not graceful.now()
    clock.now += 2.0
    assert not graceful.now()
    assert graceful.after_epoch()
    # However wrong the guess: never longer than the 5 s after the stop.
    clock.now += 3.5
    assert graceful.now()

    # Epochs of 60 s, 10 s into one: 50 s left, far more than 5: stop at this batch.
    slow = GracefulStop(5.0, clock=clock, stopping=lambda: True)
    clock.now += 60.0
    slow.epoch_recorded()
    clock.now += 10.0
    assert slow.now()
    # Before any epoch is recorded nothing says how long one takes: stop at once.
    assert GracefulStop(5.0, clock=clock, stopping=lambda: True).now()


def test_a_shutdown_in_the_main_process_reaches_its_forked_pool_processes(
    tmp_path: Path,
) -> None:
    """What Celery's worker_shutting_down runs in a worker's main process reaches a
    process forked before it (a pool process), which sees it as the training loop would;
    and the main process stays without torch (it only imports the flag)."""
    code = """
import os, sys, time
import workers.app
from workers import stopping
assert "torch" not in sys.modules, "the worker's main process imported torch"
pid = os.fork()
if pid == 0:  # the pool process
    deadline = time.monotonic() + 60
    while not stopping.worker_stopping() and time.monotonic() < deadline:
        time.sleep(0.01)
    os._exit(0 if stopping.worker_stopping() else 1)
workers.app._stop_gracefully(sig="SIGTERM", how="Warm")
print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    env.update(
        DESCENT_DATA_DIR=str(tmp_path), DESCENT_WORKER_STOP_SECONDS="600", PYTHONPATH=str(ROOT)
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "child exit 0" in done.stdout


def test_a_worker_whose_jobs_do_not_hand_back_in_time_turns_to_a_cold_shutdown(
    tmp_path: Path,
) -> None:
    """The bound: DESCENT_WORKER_STOP_SECONDS after the first SIGTERM the main process
    sends itself Celery's cold shutdown (SIGQUIT), once however many signals came."""
    code = """
import signal, time
import workers.app
quits = []
signal.signal(signal.SIGQUIT, lambda *_: quits.append(time.monotonic()))
workers.app._stop_gracefully(sig="SIGTERM", how="Warm")
workers.app._stop_gracefully(sig="SIGTERM", how="Warm")  # a second SIGTERM: no new timer
deadline = time.monotonic() + 60
while not quits and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(1.0)
print("quits", len(quits))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    env.update(
        DESCENT_DATA_DIR=str(tmp_path), DESCENT_WORKER_STOP_SECONDS="0.2", PYTHONPATH=str(ROOT)
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "quits 1" in done.stdout
    assert "did not hand themselves back within" in done.stderr


# -- through the runner ---------------------------------------------------------------


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return backend.settings().model_copy(update=IN_PROCESS_WORKER)


@pytest.fixture(autouse=True)
def _clear_flag() -> Iterator[None]:
    stopping.clear_worker_stopping()
    yield
    stopping.clear_worker_stopping()


#: The queue the jobs here were submitted to: not the worker's own.
HANDED_QUEUE = "gpu-pool"


def new_job(sessions: sessionmaker[Session]) -> str:
    return job_rows.new_job(sessions, spec=SPEC, queue=HANDED_QUEUE)


def epochs_of(sessions: sessionmaker[Session], job_id: str) -> list[tuple[int, Any]]:
    with sessions() as s:
        rows = s.execute(
            select(EpochMetric.epoch, EpochMetric.values)
            .where(EpochMetric.job_id == job_id)
            .order_by(EpochMetric.epoch)
        ).all()
    return [(epoch, values["val_loss"]) for epoch, values in rows]


def stop_after_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Ask the worker to stop once ``epoch`` is recorded, as a SIGTERM would."""
    report = runner.SqlReporter.report

    def reporting(self: runner.SqlReporter, n: int, *args: Any) -> None:
        report(self, n, *args)
        if n == epoch:
            stopping.set_worker_stopping()

    monkeypatch.setattr(runner.SqlReporter, "report", reporting)


@pytest.mark.parametrize(
    ("stop_seconds", "kept"),
    [
        (60.0, 3),  # iris's epochs take milliseconds: the one in progress is finished
        (1e-6, 2),  # no time to wait: it stops mid-epoch and that epoch runs again
    ],
)
def test_a_stopping_worker_hands_its_job_back_and_the_next_attempt_resumes_it_exactly(
    settings: Settings,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    stop_seconds: float,
    kept: int,
) -> None:
    settings = settings.model_copy(update={"worker_stop_seconds": stop_seconds})
    sent: list[tuple[str, int]] = []
    queues: list[str | None] = []

    def send(job_id: str, dispatch: int, queue: str | None = None) -> None:
        sent.append((job_id, dispatch))
        queues.append(queue)

    # The numbers of an uninterrupted run of the same spec.
    straight = new_job(sessions)
    runner.run_job(straight, settings=settings, dispatch=1, send=send)
    expected = epochs_of(sessions, straight)
    assert len(expected) == EPOCHS

    job_id = new_job(sessions)
    with monkeypatch.context() as patch:
        stop_after_epoch(patch, 2)
        runner.run_job(job_id, settings=settings, dispatch=1, send=send)
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None
        assert (job.status, job.attempt, job.dispatch) == (JobStatus.QUEUED, 1, 2)
        assert job.epochs_completed == kept
        assert job.status_reason and f"handed the job back after epoch {kept}" in job.status_reason
    assert sent == [(job_id, 2)]  # its new message: the next worker takes it at once
    assert queues == [HANDED_QUEUE]  # to the job's own queue, not the sender's
    assert epochs_of(sessions, job_id) == expected[:kept]

    # The same worker, still stopping, passes a message on rather than start an attempt.
    runner.run_job(job_id, settings=settings, dispatch=2, send=send)
    assert sent[-1] == (job_id, 2)
    with sessions() as s:
        assert s.scalar(select(Job.attempt).where(Job.id == job_id)) == 1

    stopping.clear_worker_stopping()  # the next worker
    runner.run_job(job_id, settings=settings, dispatch=2, send=send)
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status == JobStatus.SUCCEEDED
        attempts = s.execute(
            select(JobAttempt.outcome, JobAttempt.resumed_from_epoch)
            .where(JobAttempt.job_id == job_id)
            .order_by(JobAttempt.attempt)
        ).all()
    assert [tuple(a) for a in attempts] == [
        (lifecycle.HANDED_BACK, 0),
        (JobStatus.SUCCEEDED, kept),
    ]
    # Every epoch once, and each the very number the uninterrupted run recorded.
    assert epochs_of(sessions, job_id) == expected
