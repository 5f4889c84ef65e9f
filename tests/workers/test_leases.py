"""Claims, leases, fencing and the reaper against a real database (SQLite file and
PostgreSQL), without worker processes: each rule of workers/claim.py, workers/lease.py
and workers/reaper.py on its own."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from job_rows import new_job
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from support import Backend

from service.config import Settings
from service.db import utcnow
from service.jobs.models import EpochMetric, Job, JobAttempt
from service.jobs.states import JobStatus
from workers.claim import claim
from workers.lease import Lease, LeaseLost, retrying
from workers.reaper import reap_once


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return backend.settings().model_copy(
        update={
            "heartbeat_seconds": 0.2,
            "lease_seconds": 1.0,
            "cancel_poll_seconds": 0.1,
            "max_restarts": 2,
            "redispatch_seconds": 5.0,
        }
    )


def row(sessions, job_id: str) -> Job:  # noqa: ANN001
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def expire(sessions, job_id: str, seconds: float = 60) -> None:  # noqa: ANN001
    with sessions() as s, s.begin():
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def lease_for(sessions, settings: Settings, job_id: str, attempt: int) -> Lease:  # noqa: ANN001
    return Lease(
        sessions,
        job_id,
        attempt,
        heartbeat_seconds=settings.heartbeat_seconds,
        poll_seconds=settings.cancel_poll_seconds,
        retry_seconds=0,
    )


def test_a_current_message_starts_attempt_one_and_a_leftover_is_dropped(sessions, settings):
    job_id = new_job(sessions)
    claimed = claim(sessions, settings, job_id, 1)
    assert claimed is not None and claimed.attempt == 1
    job = row(sessions, job_id)
    assert job.status == JobStatus.RUNNING and job.attempt == 1 and job.heartbeat_at is not None
    with sessions() as s:
        attempts = s.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)).all()
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, None)]

    # The reaper re-sent a queued job (dispatch 2): the first message is now a leftover.
    other = new_job(sessions, dispatch=2)
    assert claim(sessions, settings, other, 1) is None
    assert row(sessions, other).status == JobStatus.QUEUED
    assert claim(sessions, settings, other, 2) is not None
    # Unknown and ended jobs: nothing to do.
    assert claim(sessions, settings, str(uuid.uuid4()), 1) is None
    done = new_job(sessions, status=JobStatus.SUCCEEDED)
    assert claim(sessions, settings, done, 1) is None


def test_a_duplicate_message_for_a_live_job_is_dropped_once_the_heartbeat_moves(sessions, settings):
    job_id = new_job(sessions)
    first = claim(sessions, settings, job_id, 1)
    assert first is not None
    lease = lease_for(sessions, settings, job_id, first.attempt)
    lease.start()
    try:
        started = time.monotonic()
        assert claim(sessions, settings, job_id, 1) is None
        waited = time.monotonic() - started
    finally:
        lease.stop()
    job = row(sessions, job_id)
    assert job.attempt == 1 and job.status == JobStatus.RUNNING
    # It watched the heartbeat rather than waiting out the whole lease.
    assert waited < settings.lease_seconds


def test_an_expired_lease_is_taken_over_and_the_old_attempt_is_fenced_out(sessions, settings):
    job_id = new_job(sessions)
    first = claim(sessions, settings, job_id, 1)
    assert first is not None
    old = lease_for(sessions, settings, job_id, 1)
    with old.fenced("epoch 1", epochs_completed=1) as s:
        s.add(EpochMetric(job_id=job_id, epoch=1, values={"val_loss": 1.0}))

    expire(sessions, job_id)  # its worker went quiet
    second = claim(sessions, settings, job_id, 1)  # e.g. Celery redelivered the message
    assert second is not None and second.attempt == 2 and second.epochs_completed == 1

    refused = "descent_worker_fenced_writes_refused_total"  # workers/metrics.py
    before = REGISTRY.get_sample_value(refused) or 0
    with (
        pytest.raises(LeaseLost, match="attempt 2 took over"),
        old.fenced("epoch 2", epochs_completed=2) as s,
    ):
        s.add(EpochMetric(job_id=job_id, epoch=2, values={"val_loss": 0.5}))
    assert old.lost is not None
    assert REGISTRY.get_sample_value(refused) == before + 1
    with pytest.raises(LeaseLost):
        old.check()  # the training loop stops at its next batch
    new = lease_for(sessions, settings, job_id, 2)
    with new.fenced("epoch 2", epochs_completed=2) as s:
        s.add(EpochMetric(job_id=job_id, epoch=2, values={"val_loss": 0.4}))
    with sessions() as s:
        rows = s.execute(select(EpochMetric.epoch, EpochMetric.values)).all()
        attempts = s.execute(
            select(JobAttempt.attempt, JobAttempt.outcome).order_by(JobAttempt.attempt)
        ).all()
    assert sorted((e, v["val_loss"]) for e, v in rows) == [(1, 1.0), (2, 0.4)]
    assert [tuple(a) for a in attempts] == [(1, "lost"), (2, None)]


def test_the_heartbeat_thread_notices_a_takeover_and_a_cancel(sessions, settings):
    job_id = new_job(sessions)
    claim(sessions, settings, job_id, 1)
    lease = lease_for(sessions, settings, job_id, 1)
    lease.start()
    try:
        assert lease.check() is False
        with sessions() as s, s.begin():
            s.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
        assert _eventually(lambda: lease.cancel_requested)
        assert lease.check() is True
        with sessions() as s, s.begin():
            s.execute(update(Job).where(Job.id == job_id).values(attempt=2))
        assert _eventually(lambda: lease.lost is not None)
        with pytest.raises(LeaseLost, match="attempt 2"):
            lease.check()
    finally:
        lease.stop()


def test_a_lost_job_resumes_fails_or_cancels_by_its_state(sessions, settings):
    sent: list[tuple[str, int]] = []
    resumable = new_job(sessions)
    claim(sessions, settings, resumable, 1)
    worn_out = new_job(sessions, status=JobStatus.RUNNING, attempt=settings.max_restarts + 1)
    cancelled = new_job(sessions, status=JobStatus.RUNNING, attempt=1, cancel_requested=True)
    alive = new_job(sessions)
    claim(sessions, settings, alive, 1)
    for job_id in (resumable, worn_out, cancelled):
        expire(sessions, job_id)

    counts = reap_once(sessions, settings, lambda j, d, q=None: sent.append((j, d)))
    assert counts == {
        "requeued": 1,
        "failed": 1,
        "cancelled": 1,
        "resent": 0,
        "redispatched": 0,
    }
    assert sent == [(resumable, 2)]
    job = row(sessions, resumable)
    assert (
        job.status == JobStatus.QUEUED
        and job.dispatch == 2
        and "waiting to resume" in job.status_reason
    )
    job = row(sessions, worn_out)
    assert job.status == JobStatus.FAILED and "max_restarts=2" in job.status_reason
    assert row(sessions, cancelled).status == JobStatus.CANCELLED
    assert row(sessions, alive).status == JobStatus.RUNNING
    # The resent message resumes it as attempt 2; the original is a leftover.
    assert claim(sessions, settings, resumable, 1) is None
    assert claim(sessions, settings, resumable, 2).attempt == 2
    # A second reaper pass finds nothing more to do.
    assert reap_once(sessions, settings, lambda j, d, q=None: sent.append((j, d)))["requeued"] == 0
    assert len(sent) == 1


def test_a_claim_of_an_expired_job_respects_cancel_and_max_restarts(sessions, settings):
    worn_out = new_job(sessions, status=JobStatus.RUNNING, attempt=settings.max_restarts + 1)
    cancelled = new_job(sessions, status=JobStatus.RUNNING, attempt=1, cancel_requested=True)
    for job_id in (worn_out, cancelled):
        expire(sessions, job_id)
        assert claim(sessions, settings, job_id, 1) is None
    assert row(sessions, worn_out).status == JobStatus.FAILED
    assert row(sessions, cancelled).status == JobStatus.CANCELLED  # never resumed


def test_a_long_queued_job_is_sent_again_in_case_its_message_was_lost(sessions, settings):
    sent: list[tuple[str, int]] = []
    fresh = new_job(sessions)
    old = new_job(sessions)
    with sessions() as s, s.begin():
        s.execute(
            update(Job)
            .where(Job.id == old)
            .values(dispatched_at=utcnow() - timedelta(seconds=settings.redispatch_seconds + 1))
        )
    counts = reap_once(sessions, settings, lambda j, d, q=None: sent.append((j, d)))
    assert counts["redispatched"] == 1 and sent == [(old, 2)]
    assert row(sessions, fresh).dispatch == 1


def test_database_writes_are_retried_while_unreachable_and_errors_are_not():
    from sqlalchemy.exc import IntegrityError, OperationalError

    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return "ok"

    assert retrying(flaky, seconds=10, what="test") == "ok" and calls["n"] == 3

    def broken() -> None:
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        retrying(broken, seconds=10, what="test")

    def down() -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    started = time.monotonic()
    with pytest.raises(OperationalError):
        retrying(down, seconds=0.5, what="test")
    assert time.monotonic() - started < 5


def _eventually(predicate, timeout: float = 5.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_two_claims_racing_for_one_queued_job_start_one_attempt(sessions, settings):
    job_id = new_job(sessions)
    results: list[object] = []
    barrier = threading.Barrier(4)

    leases: list[Lease] = []

    def race() -> None:
        barrier.wait()
        won = claim(sessions, settings, job_id, 1)
        if won is not None:  # the winner keeps its lease alive, as a worker does
            leases.append(lease_for(sessions, settings, job_id, won.attempt))
            leases[-1].start()
        results.append(won)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lease in leases:
        lease.stop()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and row(sessions, job_id).attempt == 1
