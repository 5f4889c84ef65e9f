"""A job's life: every change of a job row's status — and every other write the claim,
lease and fence protocol makes to it — as one named function.

Each function is a conditional ``UPDATE jobs`` (two for ``fail_lost``, ``hand_back``
and ``stop_trials``) in the caller's session that returns whether it took effect; when it
does not, the row is exactly as it was. The condition is the whole rule: a function
never trusts what its caller read a moment earlier, so two processes racing for one job
cannot both win. ``TRANSITIONS`` (service/jobs/transitions.py) lists every allowed
(from → to) pair; a contract test
(tests/service/jobs/test_lifecycle.py) applies each function to a job in each status, on
SQLite and PostgreSQL, and the docs print the table.

Nothing here commits: a transition is one statement of a transaction its caller owns,
because what must happen atomically with it is the caller's business. A worker's fenced
writes (:func:`fence`, :func:`record_outcome`, :func:`hand_back`) must be the FIRST
statement of their transaction: on PostgreSQL the update locks the row until commit and
on SQLite it takes the write lock, so whatever the caller does next inside that
transaction (insert an epoch's metrics, rename a checkpoint into place) happens while no
other attempt can take the job (workers/lease.py). Functions that end an attempt also
write its ``JobAttempt`` row, in the same transaction.

Who calls what: the API (jobs/service.py) creates jobs ``queued`` and cancels them; a
sweep's driver (sweeps/driver.py) stops the jobs of an ended sweep; a worker's claim
(workers/claim.py) starts or takes over an attempt or ends a lost one; its lease
(workers/lease.py) fences every write and records the outcome, and its runner hands the
job back when the worker is stopping (workers/handback.py); the reaper
(workers/reaper.py) requeues or ends jobs whose worker was lost and re-sends those whose
message was lost or is stale; a worker's main process notes which job's message it holds
(workers/fleet.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from service.db import rowcount
from service.jobs.models import Job, JobAttempt
from service.jobs.states import JobStatus
from service.jobs.transitions import (
    CANCELLED,
    QUEUED,
    RUNNING,
    TRANSITIONS,
    Transition,
    allowed,
    markdown_table,
)

#: How an attempt ended when it did not record the job's outcome (``JobAttempt.outcome``
#: otherwise holds the job's status): its worker went quiet and the lease expired, or
#: it found another attempt holding the job.
LOST, SUPERSEDED = "lost", "superseded"
#: An attempt whose worker was stopping (SIGTERM) gave its job back to the queue at a
#: batch boundary (:func:`hand_back`). Not a loss: it never counts against max_restarts.
HANDED_BACK = "handed_back"

#: Columns only the functions below write: a fenced write may not set them.
PROTOCOL_COLUMNS = frozenset(
    {"status", "attempt", "heartbeat_at", "dispatch", "dispatched_at", "cancel_requested"}
) | {"held_by", "held_at"}
#: A new dispatch, or an attempt started: no worker holds an unstarted message any more.
_UNHELD: dict[str, Any] = {"held_by": None, "held_at": None}


# -- the statements ----------------------------------------------------------------------


def _update(session: Session, where: list[ColumnElement[bool]], values: Mapping[str, Any]) -> int:
    # No ORM synchronisation: it could read the row before the update (the fence must be
    # the first statement of its transaction), and callers reread what they need.
    result = session.execute(
        update(Job).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return rowcount(result)


def _expired(expired_before: datetime) -> ColumnElement[bool]:
    return or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < expired_before)


def _held(job_id: str, attempt: int) -> list[ColumnElement[bool]]:
    return [Job.id == job_id, Job.status == RUNNING, Job.attempt == attempt]


def _lost(job_id: str, attempt: int, expired_before: datetime) -> list[ColumnElement[bool]]:
    return [*_held(job_id, attempt), _expired(expired_before)]


def _losses() -> ColumnElement[int]:
    # The job's attempts that counted against max_restarts: all of them but those handed
    # back by a stopping worker (a correlated subquery, so the rule stays one statement).
    handed_back = (
        select(func.count())
        .select_from(JobAttempt)
        .where(JobAttempt.job_id == Job.id, JobAttempt.outcome == HANDED_BACK)
        .correlate(Job)
        .scalar_subquery()
    )
    return Job.attempt - handed_back


def _resumable(
    job_id: str, attempt: int, max_restarts: int, expired_before: datetime
) -> list[ColumnElement[bool]]:
    # Lost, and neither cancelled nor worn out: the complement of fail_lost's conditions.
    return [
        *_lost(job_id, attempt, expired_before),
        ~Job.cancel_requested,
        _losses() <= max_restarts,
    ]


def _next_attempt(previous: int, worker: str, now: datetime) -> dict[str, Any]:
    return {
        "status": RUNNING,
        "attempt": previous + 1,
        "heartbeat_at": now,
        "started_at": func.coalesce(Job.started_at, now),
        "worker": worker,
        "status_reason": None,
        **_UNHELD,
    }


def _add_attempt(session: Session, job_id: str, attempt: int, worker: str, now: datetime) -> None:
    session.add(
        JobAttempt(
            job_id=job_id, attempt=attempt, worker=worker, resumed_from_epoch=0, started_at=now
        )
    )


def start_attempt(
    session: Session, *, job_id: str, previous: int, worker: str, now: datetime
) -> bool:
    """queued → running: start attempt ``previous + 1`` and take its lease.

    When: the job is queued and its ``attempt`` is still ``previous`` (what the claim
    read), so of two workers claiming one job only one starts it. Adds the attempt's
    row. Called by the claim (workers/claim.py) for a current message."""
    if not _update(
        session,
        [Job.id == job_id, Job.status == QUEUED, Job.attempt == previous],
        _next_attempt(previous, worker, now),
    ):
        return False
    _add_attempt(session, job_id, previous + 1, worker, now)
    return True


def take_over(
    session: Session,
    *,
    job_id: str,
    previous: int,
    worker: str,
    max_restarts: int,
    now: datetime,
    expired_before: datetime,
) -> bool:
    """running → running: attempt ``previous + 1`` takes the lease of the lost attempt
    ``previous``, and resumes from its checkpoint.

    When: attempt ``previous`` holds the job, its heartbeat is older than
    ``expired_before`` (or absent), no cancel was asked and ``previous`` has not used up
    ``max_restarts``. Ends the lost attempt's row as ``lost`` and adds the new one. Called
    by the claim for a message Celery redelivered after its worker died."""
    where = _resumable(job_id, previous, max_restarts, expired_before)
    if not _update(session, where, _next_attempt(previous, worker, now)):
        return False
    end_attempt(session, job_id=job_id, attempt=previous, outcome=LOST, now=now)
    _add_attempt(session, job_id, previous + 1, worker, now)
    return True


def requeue_lost(
    session: Session,
    *,
    job_id: str,
    attempt: int,
    epochs_completed: int,
    max_restarts: int,
    now: datetime,
    expired_before: datetime,
) -> bool:
    """running → queued with a new dispatch number: its worker is gone; the next attempt
    resumes from the checkpoint once the new message (``dispatch + 1``) arrives.

    When: as :func:`take_over` (``attempt`` holds it, lease expired, no cancel, restarts
    left). Ends the attempt's row as ``lost``. Called by the reaper, which then sends the
    message."""
    where = _resumable(job_id, attempt, max_restarts, expired_before)
    values = {
        "status": QUEUED,
        "status_reason": f"waiting to resume: the worker of attempt {attempt} was lost "
        f"after epoch {epochs_completed}",
        "dispatch": Job.dispatch + 1,
        "dispatched_at": now,
        **_UNHELD,
    }
    if not _update(session, where, values):
        return False
    end_attempt(session, job_id=job_id, attempt=attempt, outcome=LOST, now=now)
    return True


def lost_reason(attempt: int, max_restarts: int, epoch: int) -> str:
    return (
        f"its worker was lost {attempt} time(s), more than max_restarts={max_restarts} "
        f"allows (last at epoch {epoch}); a worker killed for lack of memory is the "
        "usual cause: try a smaller model or batch size"
    )


def fail_lost(
    session: Session,
    *,
    job_id: str,
    attempt: int,
    epochs_completed: int,
    max_restarts: int,
    now: datetime,
    expired_before: datetime,
) -> JobStatus | None:
    """running → cancelled (a cancel was asked) or failed (``attempt`` used up
    ``max_restarts``): a job whose worker is gone and which must not resume. Returns the
    status it ended with, or None when neither holds (or the lease is not ``attempt``'s
    or not expired).

    Ends the attempt's row as ``lost``. Called by the claim and the reaper before they
    try :func:`take_over` / :func:`requeue_lost`, which refuse exactly these jobs."""
    where = _lost(job_id, attempt, expired_before)
    if _update(
        session,
        [*where, Job.cancel_requested.is_(True)],
        {
            "status": CANCELLED,
            "status_reason": f"cancelled by request after {epochs_completed} epoch(s) "
            "(its worker was lost)",
            "finished_at": now,
        },
    ):
        status = JobStatus.CANCELLED
    elif _update(
        session,
        [*where, _losses() > max_restarts],
        {
            "status": JobStatus.FAILED,
            "status_reason": lost_reason(
                _lost_count(session, job_id, attempt), max_restarts, epochs_completed
            ),
            "finished_at": now,
        },
    ):
        status = JobStatus.FAILED
    else:
        return None
    end_attempt(session, job_id=job_id, attempt=attempt, outcome=LOST, now=now)
    return status


def _lost_count(session: Session, job_id: str, attempt: int) -> int:
    # Only for the message: the condition above is the rule.
    handed_back = session.scalar(
        select(func.count())
        .select_from(JobAttempt)
        .where(JobAttempt.job_id == job_id, JobAttempt.outcome == HANDED_BACK)
    )
    return attempt - int(handed_back or 0)


def hand_back(
    session: Session, *, job_id: str, attempt: int, epochs_completed: int, now: datetime
) -> JobStatus | None:
    """running → queued with a new dispatch number: the worker of ``attempt`` is stopping
    (SIGTERM), so the attempt ended at a batch boundary and gives the job back; the
    caller sends the message (``dispatch + 1``) and the next worker resumes from the
    checkpoint at once, without waiting for the lease to expire. Epochs recorded so far
    stay; the attempt's row ends as ``HANDED_BACK``, which max_restarts does not count.
    Or running → cancelled when a cancel was asked meanwhile: the job must not resume.
    Returns the status it ended with, or None when ``attempt`` no longer holds the job.

    A fenced write (the first statement of its transaction). Called by the runner."""
    held = _held(job_id, attempt)
    if _update(
        session,
        [*held, ~Job.cancel_requested],
        {
            "status": QUEUED,
            "status_reason": f"waiting to resume: the worker of attempt {attempt} stopped "
            f"and handed the job back after epoch {epochs_completed}",
            "dispatch": Job.dispatch + 1,
            "dispatched_at": now,
        },
    ):
        end_attempt(session, job_id=job_id, attempt=attempt, outcome=HANDED_BACK, now=now)
        return QUEUED
    if _update(
        session,
        [*held, Job.cancel_requested.is_(True)],
        {
            "status": CANCELLED,
            "status_reason": f"cancelled by request after {epochs_completed} epoch(s)",
            "finished_at": now,
        },
    ):
        end_attempt(session, job_id=job_id, attempt=attempt, outcome=CANCELLED, now=now)
        return CANCELLED
    return None


def redispatch(
    session: Session, *, job_id: str, dispatch: int, now: datetime, stale_before: datetime
) -> bool:
    """queued → queued with dispatch ``dispatch + 1``: its message may have been lost (a
    Redis restart without persistence); the caller sends a new one, and a worker drops
    the old copy if it was not lost after all.

    When: queued, still at ``dispatch``, last sent before ``stale_before``. Called by the
    reaper."""
    return bool(
        _update(
            session,
            [
                Job.id == job_id,
                Job.status == QUEUED,
                Job.dispatch == dispatch,
                Job.dispatched_at < stale_before,
            ],
            {"dispatch": dispatch + 1, "dispatched_at": now, **_UNHELD},
        )
    )


def hold(session: Session, *, job_id: str, dispatch: int, worker: str, now: datetime) -> bool:
    """queued → queued with ``held_by = worker``: that worker (``workers.id``, its main
    process) received the message of dispatch ``dispatch`` and has not started it yet. If
    the worker is lost before it starts the job, the reaper re-sends at once
    (:func:`resend`) rather than after ``redispatch_seconds``.

    When: queued and still at ``dispatch`` (a leftover copy holds nothing). A later
    delivery of the same message (a broker's redelivery) moves the hold to its receiver.
    :func:`start_attempt` and every new dispatch clear it. Called by a worker's main
    process as it receives a message (workers/fleet.py)."""
    return bool(
        _update(
            session,
            [Job.id == job_id, Job.status == QUEUED, Job.dispatch == dispatch],
            {"held_by": worker, "held_at": now},
        )
    )


def resend(
    session: Session, *, job_id: str, dispatch: int, held_by: str | None, now: datetime
) -> bool:
    """queued → queued with dispatch ``dispatch + 1``: the message of ``dispatch`` is known
    to be lost — the worker holding it (``held_by``) is gone, or the broker restarted or
    its queue is empty while the job waits. The caller sends a new one; a copy that was
    not lost after all is dropped by its worker (its dispatch number is old).

    When: queued, still at ``dispatch`` and still held by ``held_by`` (None: by no one),
    as the reaper read it — so of two reapers judging one job only one re-sends it. Called
    by the reaper."""
    holder = Job.held_by.is_(None) if held_by is None else Job.held_by == held_by
    return bool(
        _update(
            session,
            [Job.id == job_id, Job.status == QUEUED, Job.dispatch == dispatch, holder],
            {"dispatch": dispatch + 1, "dispatched_at": now, **_UNHELD},
        )
    )


def cancel_queued(
    session: Session, *, job_id: str, now: datetime, reason: str = "cancelled before it started"
) -> bool:
    """queued → cancelled: a cancel reaches a job before any worker took it; it never
    starts. When: still queued (a claim starting it at the same moment wins, and the
    caller asks the running job to stop instead). Called by the API's cancel."""
    return bool(
        _update(
            session,
            [Job.id == job_id, Job.status == QUEUED],
            {
                "status": JobStatus.CANCELLED,
                "status_reason": reason,
                "cancel_requested": True,
                "finished_at": now,
            },
        )
    )


def request_stop(session: Session, *, job_id: str) -> bool:
    """running → running with ``cancel_requested``: its attempt reads the flag at its next
    heartbeat and stops at a batch boundary, recording ``cancelled``. The flag is durable:
    a lost job with it set ends ``cancelled`` instead of resuming. When: running and not
    yet asked. Called by the API's cancel."""
    return bool(
        _update(
            session,
            [Job.id == job_id, Job.status == RUNNING, ~Job.cancel_requested],
            {"cancel_requested": True},
        )
    )


def stop_trials(session: Session, *, sweep_id: str, reason: str, now: datetime) -> list[str]:
    """The jobs of an ended sweep: queued → cancelled (with ``reason``), running → running
    with ``cancel_requested``. Returns the ids of the jobs it changed (empty: none).
    Called by the sweep's driver when it ends a sweep, and by every tick for an ended
    sweep whose jobs are still going (a driver that died between the two)."""
    cancelled = session.scalars(
        update(Job)
        .where(Job.sweep_id == sweep_id, Job.status == QUEUED)
        .values(
            status=JobStatus.CANCELLED,
            status_reason=reason,
            cancel_requested=True,
            finished_at=now,
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).all()
    stopping = session.scalars(
        update(Job)
        .where(Job.sweep_id == sweep_id, Job.status == RUNNING, ~Job.cancel_requested)
        .values(cancel_requested=True)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).all()
    return [*cancelled, *stopping]


def fence(session: Session, *, job_id: str, attempt: int, now: datetime, **values: Any) -> bool:
    """running → running: ``attempt`` proves it still holds the job and writes ``values``
    with a new heartbeat. False once another attempt took the job over, or it ended, or
    was deleted: the attempt must then write nothing more.

    The first statement of every fenced transaction (see the module's docstring): the
    lease's heartbeat and each epoch's record, pruner notes and results. ``values`` may
    not set the protocol's own columns (``PROTOCOL_COLUMNS``)."""
    if forbidden := PROTOCOL_COLUMNS & values.keys():
        raise ValueError(f"a fenced write may not set {sorted(forbidden)}")
    return bool(_update(session, _held(job_id, attempt), {"heartbeat_at": now, **values}))


def record_outcome(
    session: Session,
    *,
    job_id: str,
    attempt: int,
    status: JobStatus,
    now: datetime,
    **values: Any,
) -> bool:
    """running → ``status`` (succeeded, failed, cancelled, diverged or pruned): the attempt
    holding the job records how it ended, with ``values`` (metrics, reason, …), and ends
    its attempt's row with that status. A fenced write: the first statement of its
    transaction, refused like :func:`fence`. Called by the runner through its lease."""
    if status not in JobStatus.TERMINAL:
        raise ValueError(f"an outcome is one of {sorted(JobStatus.TERMINAL)}, not {status!r}")
    if forbidden := PROTOCOL_COLUMNS & values.keys():
        raise ValueError(f"an outcome may not set {sorted(forbidden)}")
    done = _update(
        session,
        _held(job_id, attempt),
        {"status": status, "finished_at": now, "heartbeat_at": now, **values},
    )
    if not done:
        return False
    end_attempt(session, job_id=job_id, attempt=attempt, outcome=status, now=now)
    return True


# -- attempts ----------------------------------------------------------------------------


def note_resume(session: Session, *, job_id: str, attempt: int, epoch: int) -> bool:
    """Attempt ``attempt`` resumed from the checkpoint of ``epoch``."""
    return _update_attempt(session, job_id, attempt, {"resumed_from_epoch": epoch})


def end_attempt(
    session: Session, *, job_id: str, attempt: int, outcome: str, now: datetime
) -> bool:
    """Attempt ``attempt`` ended: with the job's status when it recorded one, else
    ``LOST`` or ``SUPERSEDED``. The attempt's own row, not the job's: an attempt that was
    taken over may still say how it ended."""
    return _update_attempt(session, job_id, attempt, {"ended_at": now, "outcome": outcome})


def _update_attempt(session: Session, job_id: str, attempt: int, values: Mapping[str, Any]) -> bool:
    result = session.execute(
        update(JobAttempt)
        .where(JobAttempt.job_id == job_id, JobAttempt.attempt == attempt)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(rowcount(result))


__all__ = [
    "HANDED_BACK",
    "LOST",
    "SUPERSEDED",
    "TRANSITIONS",
    "Transition",
    "allowed",
    "cancel_queued",
    "end_attempt",
    "fail_lost",
    "fence",
    "hand_back",
    "hold",
    "lost_reason",
    "markdown_table",
    "note_resume",
    "record_outcome",
    "redispatch",
    "request_stop",
    "requeue_lost",
    "resend",
    "start_attempt",
    "stop_trials",
    "take_over",
]
