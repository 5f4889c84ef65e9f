"""The job lifecycle's contract (service/jobs/lifecycle.py) on SQLite and PostgreSQL.

Each transition function is applied to a job in every status: it takes effect exactly for
the (from → to) pairs ``lifecycle.TRANSITIONS`` lists, and refuses every other one —
returning a false value and leaving the row and its attempts exactly as they were. The
test reads its expectations from that table, so the code and the table cannot drift.
Then each function's conditions beyond the status (whose attempt, a live lease, a cancel,
restarts left, a stale dispatch) are checked one by one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker
from support import Backend

from service.db import make_engine, make_sessionmaker, utcnow
from service.jobs import lifecycle
from service.jobs.models import Job, JobAttempt
from service.jobs.states import JobKind, JobStatus
from service.spec import JobSpec
from service.spec.lab import JobKind as SpecJobKind
from service.sweeps.models import Sweep
from service.sweeps.states import SweepKind, SweepStatus

SPEC = JobSpec.model_validate({"dataset": {"name": "iris"}}).model_dump(mode="json")
NOW = utcnow()
LEASE = timedelta(seconds=30)
EXPIRED_BEFORE = NOW - LEASE
#: A heartbeat older than the lease: its worker is gone.
EXPIRED = NOW - 2 * LEASE
REDISPATCH = timedelta(minutes=10)
STALE_BEFORE = NOW - REDISPATCH
MAX_RESTARTS = 2
#: What the claim and the reaper pass to the functions that judge a lost job.
LOST: dict[str, Any] = {
    "max_restarts": MAX_RESTARTS,
    "now": NOW,
    "expired_before": EXPIRED_BEFORE,
}


@pytest.fixture(scope="module")
def sessions(module_backend: Backend) -> Iterator[sessionmaker[Session]]:
    # One database per backend for the module: every test makes jobs of its own.
    engine = make_engine(str(module_backend.settings().database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def owner(sessions: sessionmaker[Session]) -> str:
    from service.auth.service import create_user

    with sessions() as s, s.begin():
        return create_user(session=s, name="lifecycle", role="user").id


@pytest.fixture
def sweep_id(sessions: sessionmaker[Session], owner: str) -> str:
    """An ended sweep of the test's own."""
    with sessions() as s, s.begin():
        sweep = Sweep(
            id=str(uuid.uuid4()),
            owner_id=owner,
            name="s",
            kind=SweepKind.SEARCH,
            status=SweepStatus.CANCELLED,
            spec={},
            task="classification",
            max_trials=1,
        )
        s.add(sweep)
    return sweep.id


def put(sessions: sessionmaker[Session], status: JobStatus, **values: Any) -> str:
    """A job in ``status`` as the protocol leaves one there: attempt 1 (a queued one was
    requeued) with its attempt row, a fresh heartbeat, dispatch 1 sent just now."""
    job_id = str(uuid.uuid4())
    row: dict[str, Any] = {
        "id": job_id,
        "name": "t",
        "spec": SPEC,
        "task": "classification",
        "n_parameters": 10,
        "status": status,
        "attempt": 1,
        "heartbeat_at": NOW,
        "dispatch": 1,
        "dispatched_at": NOW,
        "cancel_requested": False,
        "finished_at": NOW - timedelta(hours=1) if status in JobStatus.TERMINAL else None,
        **values,
    }
    with sessions() as s, s.begin():
        s.add(Job(**row))
        s.flush()
        s.add(JobAttempt(job_id=job_id, attempt=row["attempt"], worker="w0", started_at=NOW))
    return job_id


def snapshot(sessions: sessionmaker[Session], job_id: str) -> dict[str, Any]:
    """Every column of the job and of its attempts."""
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None
        attempts = s.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.attempt)
        ).all()
        return {
            "job": {c.key: getattr(job, c.key) for c in inspect(Job).column_attrs},
            "attempts": [
                {c.key: getattr(a, c.key) for c in inspect(JobAttempt).column_attrs}
                for a in attempts
            ],
        }


# -- how to call each function, and what it must have done ------------------------------


@dataclass(frozen=True)
class Case:
    """How to call one function for ``target`` (``prepare``: the job's columns besides
    its status that the allowed transition needs) and what it must have done."""

    call: Callable[[Session, str, dict[str, Any], JobStatus | None], object]
    prepare: Callable[[JobStatus | None], dict[str, Any]] = lambda _target: {}
    check: Callable[[dict[str, Any], dict[str, Any], JobStatus], None] = (
        lambda _before, _after, _target: None
    )
    took: Callable[[object, str], bool] = lambda result, _job_id: bool(result)
    needs_sweep: bool = False


def _attempts(snap: dict[str, Any]) -> dict[int, tuple[Any, ...]]:
    return {a["attempt"]: (a["worker"], a["ended_at"], a["outcome"]) for a in snap["attempts"]}


def _started(before: dict[str, Any], after: dict[str, Any], _target: JobStatus) -> None:
    job = after["job"]
    assert job["attempt"] == 2 and job["worker"] == "w1" and job["heartbeat_at"] == NOW
    assert job["status_reason"] is None
    assert _attempts(after)[2] == ("w1", None, None)


def _took_over(before: dict[str, Any], after: dict[str, Any], target: JobStatus) -> None:
    _started(before, after, target)
    assert _attempts(after)[1] == ("w0", NOW, lifecycle.LOST)


def _lost(before: dict[str, Any], after: dict[str, Any], _target: JobStatus) -> None:
    assert _attempts(after) == {before["job"]["attempt"]: ("w0", NOW, lifecycle.LOST)}


def _requeued(before: dict[str, Any], after: dict[str, Any], target: JobStatus) -> None:
    _lost(before, after, target)
    job = after["job"]
    assert job["dispatch"] == 2 and job["dispatched_at"] == NOW and job["attempt"] == 1
    assert "waiting to resume" in job["status_reason"]


def _failed_lost(before: dict[str, Any], after: dict[str, Any], target: JobStatus) -> None:
    _lost(before, after, target)
    assert after["job"]["finished_at"] == NOW
    expected = "max_restarts=2" if target == JobStatus.FAILED else "cancelled by request"
    assert expected in after["job"]["status_reason"]


def _handed_back(before: dict[str, Any], after: dict[str, Any], target: JobStatus) -> None:
    job = after["job"]
    outcome = lifecycle.HANDED_BACK if target == JobStatus.QUEUED else JobStatus.CANCELLED
    assert _attempts(after) == {1: ("w0", NOW, outcome)}
    # The epochs recorded so far stay: the next attempt resumes after them.
    assert job["epochs_completed"] == before["job"]["epochs_completed"] == 4
    assert "after epoch 4" in job["status_reason"] or "after 4 epoch" in job["status_reason"]
    if target == JobStatus.QUEUED:
        assert job["dispatch"] == 2 and job["dispatched_at"] == NOW and job["attempt"] == 1
        assert job["finished_at"] is None
    else:
        assert job["dispatch"] == 1 and job["finished_at"] == NOW


def _redispatched(before: dict[str, Any], after: dict[str, Any], _target: JobStatus) -> None:
    assert after["job"]["dispatch"] == 2 and after["job"]["dispatched_at"] == NOW


def _held(before: dict[str, Any], after: dict[str, Any], _target: JobStatus) -> None:
    assert after["job"]["held_by"] == "host:1" and after["job"]["held_at"] == NOW
    assert after["job"]["dispatch"] == 1


def _resent(before: dict[str, Any], after: dict[str, Any], target: JobStatus) -> None:
    _redispatched(before, after, target)
    assert after["job"]["held_by"] is None and after["job"]["held_at"] is None


def _cancelled(before: dict[str, Any], after: dict[str, Any], target: JobStatus) -> None:
    job = after["job"]
    assert job["cancel_requested"] is True
    if target == JobStatus.CANCELLED:
        assert job["finished_at"] == NOW and job["status_reason"] == "stop"
    else:  # asked to stop: its attempt still holds it
        assert job["attempt"] == 1 and job["finished_at"] is None


def _fenced(before: dict[str, Any], after: dict[str, Any], _target: JobStatus) -> None:
    assert after["job"]["epochs_completed"] == 3 and after["job"]["heartbeat_at"] == NOW


def _recorded(before: dict[str, Any], after: dict[str, Any], target: JobStatus) -> None:
    job = after["job"]
    assert job["finished_at"] == NOW and job["status_reason"] == "done"
    assert _attempts(after) == {1: ("w0", NOW, target)}


def _expired(target: JobStatus | None) -> dict[str, Any]:
    return {"heartbeat_at": EXPIRED}


def _lost_for_good(target: JobStatus | None) -> dict[str, Any]:
    # Cancelled when a cancel was asked; failed once the restarts are used up.
    if target == JobStatus.CANCELLED:
        return {"heartbeat_at": EXPIRED, "cancel_requested": True}
    return {"heartbeat_at": EXPIRED, "attempt": MAX_RESTARTS + 1}


CASES: dict[str, Case] = {
    "start_attempt": Case(
        call=lambda s, job_id, row, _t: lifecycle.start_attempt(
            s, job_id=job_id, previous=row["attempt"], worker="w1", now=NOW
        ),
        check=_started,
    ),
    "take_over": Case(
        call=lambda s, job_id, row, _t: lifecycle.take_over(
            s,
            job_id=job_id,
            previous=row["attempt"],
            worker="w1",
            **LOST,
        ),
        prepare=_expired,
        check=_took_over,
    ),
    "requeue_lost": Case(
        call=lambda s, job_id, row, _t: lifecycle.requeue_lost(
            s,
            job_id=job_id,
            attempt=row["attempt"],
            epochs_completed=0,
            **LOST,
        ),
        prepare=_expired,
        check=_requeued,
    ),
    "fail_lost": Case(
        call=lambda s, job_id, row, _t: lifecycle.fail_lost(
            s,
            job_id=job_id,
            attempt=row["attempt"],
            epochs_completed=0,
            **LOST,
        ),
        prepare=_lost_for_good,
        check=_failed_lost,
    ),
    "hand_back": Case(
        call=lambda s, job_id, row, _t: lifecycle.hand_back(
            s, job_id=job_id, attempt=row["attempt"], epochs_completed=4, now=NOW
        ),
        # A cancel asked while the worker was stopping ends the job instead.
        prepare=lambda target: {
            "epochs_completed": 4,
            "cancel_requested": target == JobStatus.CANCELLED,
        },
        check=_handed_back,
    ),
    "redispatch": Case(
        call=lambda s, job_id, _row, _t: lifecycle.redispatch(
            s, job_id=job_id, dispatch=1, now=NOW, stale_before=STALE_BEFORE
        ),
        prepare=lambda _t: {"dispatched_at": STALE_BEFORE - timedelta(seconds=1)},
        check=_redispatched,
    ),
    "hold": Case(
        call=lambda s, job_id, _row, _t: lifecycle.hold(
            s, job_id=job_id, dispatch=1, worker="host:1", now=NOW
        ),
        check=_held,
    ),
    "resend": Case(
        call=lambda s, job_id, _row, _t: lifecycle.resend(
            s, job_id=job_id, dispatch=1, held_by="host:1", now=NOW
        ),
        prepare=lambda _t: {"held_by": "host:1", "held_at": EXPIRED},
        check=_resent,
    ),
    "cancel_queued": Case(
        call=lambda s, job_id, _row, _t: lifecycle.cancel_queued(
            s, job_id=job_id, now=NOW, reason="stop"
        ),
        check=_cancelled,
    ),
    "request_stop": Case(
        call=lambda s, job_id, _row, _t: lifecycle.request_stop(s, job_id=job_id),
        check=_cancelled,
    ),
    "stop_trials": Case(
        call=lambda s, _job_id, row, _t: lifecycle.stop_trials(
            s, sweep_id=row["sweep_id"], reason="stop", now=NOW
        ),
        took=lambda result, job_id: job_id in result,  # type: ignore[operator]
        check=_cancelled,
        needs_sweep=True,
    ),
    "fence": Case(
        call=lambda s, job_id, row, _t: lifecycle.fence(
            s, job_id=job_id, attempt=row["attempt"], now=NOW, epochs_completed=3
        ),
        check=_fenced,
    ),
    "record_outcome": Case(
        call=lambda s, job_id, row, target: lifecycle.record_outcome(
            s,
            job_id=job_id,
            attempt=row["attempt"],
            status=target,  # type: ignore[arg-type]
            now=NOW,
            status_reason="done",
        ),
        check=_recorded,
    ),
}


def _variants() -> list[tuple[str, JobStatus | None]]:
    """(function, target): a function whose caller chooses among several targets from
    one status (``record_outcome``'s argument, ``fail_lost``'s cancel or worn-out job)
    is tried for each; the others once (their target follows from the status)."""
    out: list[tuple[str, JobStatus | None]] = []
    for function in dict.fromkeys(t.function for t in lifecycle.TRANSITIONS):
        moves = lifecycle.allowed(function)
        if any(len(targets) > 1 for targets in moves.values()):
            out += [(function, target) for target in sorted(set().union(*moves.values()))]
        else:
            out.append((function, None))
    return out


def test_every_function_of_the_table_has_a_case_and_every_case_a_row() -> None:
    assert set(CASES) == {t.function for t in lifecycle.TRANSITIONS}
    documented = set(lifecycle.__all__)
    assert set(CASES) <= documented


@pytest.mark.parametrize("status", list(JobStatus))
@pytest.mark.parametrize(("function", "variant"), _variants())
def test_a_transition_takes_effect_exactly_from_the_statuses_the_table_allows(
    sessions: sessionmaker[Session],
    sweep_id: str,
    function: str,
    variant: JobStatus | None,
    status: JobStatus,
) -> None:
    case = CASES[function]
    row = case.prepare(variant)
    if case.needs_sweep:
        row["sweep_id"] = sweep_id
    job_id = put(sessions, status, **row)
    before = snapshot(sessions, job_id)
    targets = lifecycle.allowed(function).get(status, frozenset())
    expected = [t for t in targets if variant is None or t == variant]

    with sessions() as s, s.begin():
        result = case.call(s, job_id, before["job"], variant)
    after = snapshot(sessions, job_id)

    if not expected:
        assert not case.took(result, job_id), f"{function} moved a {status} job"
        assert after == before, f"{function} refused a {status} job but changed it"
        return
    [target] = expected
    assert case.took(result, job_id), f"{function} refused a {status} job"
    assert after["job"]["status"] == target
    if function in ("fail_lost", "hand_back"):
        assert result == target
    case.check(before, after, target)
    # Nothing else about the job changed than the transition says.
    untouched = {"name", "spec", "task", "n_parameters", "created_at", "owner_id", "sweep_id"}
    assert {k: after["job"][k] for k in untouched} == {k: before["job"][k] for k in untouched}


def test_an_outcome_must_be_terminal_and_a_fenced_write_cannot_move_the_protocol(
    sessions: sessionmaker[Session],
) -> None:
    job_id = put(sessions, JobStatus.RUNNING)
    before = snapshot(sessions, job_id)
    with sessions() as s, s.begin():
        for status in JobStatus.ACTIVE:
            with pytest.raises(ValueError, match="an outcome is one of"):
                lifecycle.record_outcome(s, job_id=job_id, attempt=1, status=status, now=NOW)
        # (``attempt`` and ``status`` are the functions' own parameters.)
        for column in lifecycle.PROTOCOL_COLUMNS - {"attempt"}:
            with pytest.raises(ValueError, match="may not set"):
                lifecycle.fence(s, job_id=job_id, attempt=1, now=NOW, **{column: None})
        for column in lifecycle.PROTOCOL_COLUMNS - {"attempt", "status"}:
            with pytest.raises(ValueError, match="may not set"):
                lifecycle.record_outcome(
                    s,
                    job_id=job_id,
                    attempt=1,
                    status=JobStatus.SUCCEEDED,
                    now=NOW,
                    **{column: None},
                )
    assert snapshot(sessions, job_id) == before


def _refused(
    sessions: sessionmaker[Session], job_id: str, call: Callable[[Session], object]
) -> None:
    before = snapshot(sessions, job_id)
    with sessions() as s, s.begin():
        assert not call(s)
    assert snapshot(sessions, job_id) == before


def test_only_the_attempt_holding_the_job_may_write_or_end_it(
    sessions: sessionmaker[Session],
) -> None:
    job_id = put(sessions, JobStatus.RUNNING, attempt=2)
    _refused(sessions, job_id, lambda s: lifecycle.fence(s, job_id=job_id, attempt=1, now=NOW))
    _refused(
        sessions,
        job_id,
        lambda s: lifecycle.record_outcome(
            s, job_id=job_id, attempt=1, status=JobStatus.SUCCEEDED, now=NOW
        ),
    )
    # A claim that read the job before another one started it starts nothing.
    queued = put(sessions, JobStatus.QUEUED, attempt=2)
    _refused(
        sessions,
        queued,
        lambda s: lifecycle.start_attempt(s, job_id=queued, previous=1, worker="w", now=NOW),
    )


def test_a_deleted_job_refuses_every_write(sessions: sessionmaker[Session]) -> None:
    gone = str(uuid.uuid4())
    with sessions() as s, s.begin():
        assert not lifecycle.fence(s, job_id=gone, attempt=1, now=NOW)
        assert not lifecycle.cancel_queued(s, job_id=gone, now=NOW)
        assert not lifecycle.request_stop(s, job_id=gone)
        assert not lifecycle.end_attempt(s, job_id=gone, attempt=1, outcome="lost", now=NOW)


@pytest.mark.parametrize("function", ["take_over", "requeue_lost", "fail_lost"])
def test_a_live_lease_is_neither_taken_over_nor_judged_lost(
    sessions: sessionmaker[Session], function: str
) -> None:
    call = CASES[function].call
    fresh = NOW - LEASE / 2
    rows: list[dict[str, Any]] = [{"attempt": 1}, {"attempt": 1, "cancel_requested": True}]
    for row in rows:
        job_id = put(sessions, JobStatus.RUNNING, heartbeat_at=fresh, **row)

        def judge(s: Session, job_id: str = job_id, row: dict[str, Any] = row) -> object:
            return call(s, job_id, row, None)

        _refused(sessions, job_id, judge)
    # So is an expired lease another attempt holds now.
    job_id = put(sessions, JobStatus.RUNNING, heartbeat_at=EXPIRED, attempt=2)
    stale = {"attempt": 1, "cancel_requested": True}
    _refused(sessions, job_id, lambda s: call(s, job_id, stale, None))


@pytest.mark.parametrize("function", ["take_over", "requeue_lost"])
def test_a_lost_job_resumes_only_without_a_cancel_and_with_restarts_left(
    sessions: sessionmaker[Session], function: str
) -> None:
    call = CASES[function].call
    cancelled = put(sessions, JobStatus.RUNNING, heartbeat_at=EXPIRED, cancel_requested=True)
    _refused(sessions, cancelled, lambda s: call(s, cancelled, {"attempt": 1}, None))
    worn_out = put(sessions, JobStatus.RUNNING, heartbeat_at=EXPIRED, attempt=MAX_RESTARTS + 1)
    _refused(sessions, worn_out, lambda s: call(s, worn_out, {"attempt": MAX_RESTARTS + 1}, None))


@pytest.mark.parametrize("function", ["take_over", "requeue_lost", "fail_lost"])
def test_attempts_handed_back_by_a_stopping_worker_are_not_restarts(
    sessions: sessionmaker[Session], function: str
) -> None:
    """Attempt 5 of a job whose attempts 1-3 were handed back has lost one worker (its
    own): it resumes under max_restarts=2, where five lost attempts would have failed."""
    job_id = put(sessions, JobStatus.RUNNING, heartbeat_at=EXPIRED, attempt=5)
    with sessions() as s, s.begin():
        for attempt, outcome in ((1, lifecycle.HANDED_BACK), (2, "handed_back"), (3, None)):
            s.add(
                JobAttempt(
                    job_id=job_id, attempt=attempt, worker="w", started_at=NOW, outcome=outcome
                )
            )
        s.add(JobAttempt(job_id=job_id, attempt=4, worker="w", started_at=NOW, outcome="lost"))
    with sessions() as s, s.begin():
        result = CASES[function].call(s, job_id, {"attempt": 5}, None)
    status = snapshot(sessions, job_id)["job"]["status"]
    if function == "fail_lost":
        # 5 - 2 = 3 losses: more than max_restarts=2 allows, so the job fails, and says 3.
        assert result == JobStatus.FAILED and status == JobStatus.FAILED
        assert "lost 3 time(s)" in snapshot(sessions, job_id)["job"]["status_reason"]
    else:
        assert not result and status == JobStatus.RUNNING

    # With one more handed back, 2 losses are within max_restarts=2: it resumes.
    job_id = put(sessions, JobStatus.RUNNING, heartbeat_at=EXPIRED, attempt=5)
    with sessions() as s, s.begin():
        for attempt in (1, 2, 3):
            s.add(
                JobAttempt(
                    job_id=job_id,
                    attempt=attempt,
                    worker="w",
                    started_at=NOW,
                    outcome=lifecycle.HANDED_BACK,
                )
            )
        s.add(JobAttempt(job_id=job_id, attempt=4, worker="w", started_at=NOW, outcome="lost"))
    with sessions() as s, s.begin():
        result = CASES[function].call(s, job_id, {"attempt": 5}, None)
    status = snapshot(sessions, job_id)["job"]["status"]
    if function == "fail_lost":
        assert result is None and status == JobStatus.RUNNING
    else:
        assert result and status in (JobStatus.RUNNING, JobStatus.QUEUED)


def test_a_lost_job_with_restarts_left_and_no_cancel_is_not_failed(
    sessions: sessionmaker[Session],
) -> None:
    job_id = put(sessions, JobStatus.RUNNING, heartbeat_at=EXPIRED)
    before = snapshot(sessions, job_id)
    with sessions() as s, s.begin():
        assert (
            lifecycle.fail_lost(
                s,
                job_id=job_id,
                attempt=1,
                epochs_completed=0,
                max_restarts=MAX_RESTARTS,
                now=NOW,
                expired_before=EXPIRED_BEFORE,
            )
            is None
        )
    assert snapshot(sessions, job_id) == before


def test_only_a_stale_message_of_the_current_dispatch_is_sent_again(
    sessions: sessionmaker[Session],
) -> None:
    fresh = put(sessions, JobStatus.QUEUED)
    _refused(
        sessions,
        fresh,
        lambda s: lifecycle.redispatch(
            s, job_id=fresh, dispatch=1, now=NOW, stale_before=STALE_BEFORE
        ),
    )
    resent = put(sessions, JobStatus.QUEUED, dispatch=2, dispatched_at=EXPIRED - REDISPATCH)
    _refused(
        sessions,
        resent,
        lambda s: lifecycle.redispatch(
            s, job_id=resent, dispatch=1, now=NOW, stale_before=STALE_BEFORE
        ),
    )


def test_a_hold_names_the_current_dispatch_and_a_start_or_resend_clears_it(
    sessions: sessionmaker[Session],
) -> None:
    # A leftover copy (an older dispatch) holds nothing.
    job_id = put(sessions, JobStatus.QUEUED, dispatch=2)
    _refused(
        sessions,
        job_id,
        lambda s: lifecycle.hold(s, job_id=job_id, dispatch=1, worker="host:1", now=NOW),
    )
    with sessions() as s, s.begin():
        assert lifecycle.hold(s, job_id=job_id, dispatch=2, worker="host:1", now=NOW)
    # A reaper that read another holder (or none) re-sends nothing: it judged another hold.
    for holder in ("host:2", None):
        _refused(
            sessions,
            job_id,
            lambda s, h=holder: lifecycle.resend(s, job_id=job_id, dispatch=2, held_by=h, now=NOW),
        )
    with sessions() as s, s.begin():
        assert lifecycle.start_attempt(s, job_id=job_id, previous=1, worker="w1", now=NOW)
    job = snapshot(sessions, job_id)["job"]
    assert job["status"] == JobStatus.RUNNING and job["held_by"] is job["held_at"] is None
    # Not held by anyone and queued: a resend of its current dispatch (its queue emptied).
    unheld = put(sessions, JobStatus.QUEUED)
    with sessions() as s, s.begin():
        assert lifecycle.resend(s, job_id=unheld, dispatch=1, held_by=None, now=NOW)
    assert snapshot(sessions, unheld)["job"]["dispatch"] == 2


def test_a_stop_is_asked_once_and_a_sweep_stops_only_its_own_jobs(
    sessions: sessionmaker[Session], sweep_id: str
) -> None:
    asked = put(sessions, JobStatus.RUNNING, cancel_requested=True)
    _refused(sessions, asked, lambda s: lifecycle.request_stop(s, job_id=asked))
    outsider = put(sessions, JobStatus.QUEUED)
    mine = put(sessions, JobStatus.RUNNING, sweep_id=sweep_id, cancel_requested=True)
    before = {j: snapshot(sessions, j) for j in (outsider, mine)}
    with sessions() as s, s.begin():
        changed = lifecycle.stop_trials(s, sweep_id=sweep_id, reason="stop", now=NOW)
    assert outsider not in changed and mine not in changed
    assert {j: snapshot(sessions, j) for j in (outsider, mine)} == before


def test_the_docs_print_the_table() -> None:
    root = Path(__file__).resolve().parents[3]
    assert lifecycle.markdown_table() in (root / "docs" / "reliability.md").read_text()


def test_the_enums_name_what_the_spec_and_the_api_name() -> None:
    from service.sweeps.schemas import TrialCounts
    from service.sweeps.states import TrialState

    assert {k.value for k in JobKind} == set(get_args(SpecJobKind))
    assert list(TrialCounts.model_fields) == [s.value for s in TrialState]
    assert set(JobStatus) == JobStatus.ACTIVE | JobStatus.TERMINAL
    assert not JobStatus.ACTIVE & JobStatus.TERMINAL
    assert JobStatus.SUCCEEDED.terminal and not JobStatus.RUNNING.terminal
    # Stored as plain strings: a member is its value.
    assert JobStatus.RUNNING == "running" and f"{JobStatus.RUNNING}" == "running"
