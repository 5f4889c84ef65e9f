"""Every allowed change of a job's status, by the function of service/jobs/lifecycle.py
that makes it: the table the contract test (tests/service/jobs/test_lifecycle.py) checks
each function against, and the docs print (docs/reliability.md)."""

from __future__ import annotations

from dataclasses import dataclass

from service.jobs.states import JobStatus

QUEUED, RUNNING, SUCCEEDED = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED
FAILED, CANCELLED, DIVERGED, PRUNED = (
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.DIVERGED,
    JobStatus.PRUNED,
)


@dataclass(frozen=True)
class Transition:
    """One allowed change: ``function`` moves a job from ``source`` to ``target`` when
    ``when`` holds. ``by`` names who calls it."""

    function: str
    source: JobStatus
    target: JobStatus
    when: str
    by: str


_CLAIM, _LEASE, _REAPER = "workers/claim.py", "workers/lease.py", "workers/reaper.py"
_FLEET = "workers/fleet.py (task_received)"
_API, _DRIVER = "jobs/service.py (cancel)", "sweeps/driver.py (end, tick)"
_LOST = "lease expired"
_HELD = "the writing attempt holds the lease"
_RUNNER = "workers/runner.py (through its lease)"

#: Every allowed (from → to) pair, by the function that makes it, in the order of a job's
#: life. Anything not listed is refused. (A job is created ``queued`` by an insert, from
#: POST /v1/jobs or a sweep's driver; a sweep's trial whose values make an invalid job is
#: inserted ``failed``.)
TRANSITIONS: tuple[Transition, ...] = (
    Transition("start_attempt", QUEUED, RUNNING, "no attempt started since it was read", _CLAIM),
    Transition("fence", RUNNING, RUNNING, f"{_HELD}: a heartbeat, an epoch, notes", _LEASE),
    *(
        Transition("record_outcome", RUNNING, status, _HELD, _RUNNER)
        for status in (SUCCEEDED, FAILED, CANCELLED, DIVERGED, PRUNED)
    ),
    Transition("cancel_queued", QUEUED, CANCELLED, "a cancel", _API),
    Transition("request_stop", RUNNING, RUNNING, "a cancel: sets cancel_requested", _API),
    Transition("stop_trials", QUEUED, CANCELLED, "its sweep ended", _DRIVER),
    Transition("stop_trials", RUNNING, RUNNING, "its sweep ended: sets cancel_requested", _DRIVER),
    Transition(
        "take_over",
        RUNNING,
        RUNNING,
        f"{_LOST}, no cancel asked, restarts left: the next attempt resumes",
        _CLAIM,
    ),
    Transition(
        "requeue_lost",
        RUNNING,
        QUEUED,
        f"{_LOST}, no cancel asked, restarts left: a new dispatch",
        _REAPER,
    ),
    Transition(
        "fail_lost", RUNNING, CANCELLED, f"{_LOST}, a cancel was asked", f"{_CLAIM}, {_REAPER}"
    ),
    Transition(
        "fail_lost", RUNNING, FAILED, f"{_LOST}, max_restarts used up", f"{_CLAIM}, {_REAPER}"
    ),
    Transition(
        "hand_back",
        RUNNING,
        QUEUED,
        f"{_HELD}, its worker is stopping, no cancel asked: a new dispatch",
        _RUNNER,
    ),
    Transition(
        "hand_back",
        RUNNING,
        CANCELLED,
        f"{_HELD}, its worker is stopping, a cancel was asked",
        _RUNNER,
    ),
    Transition(
        "hold",
        QUEUED,
        QUEUED,
        "a worker received the current dispatch's message: sets held_by",
        _FLEET,
    ),
    Transition(
        "resend",
        QUEUED,
        QUEUED,
        "its message is lost (holder gone, broker restarted or its queue empty): a new dispatch",
        _REAPER,
    ),
    Transition(
        "redispatch",
        QUEUED,
        QUEUED,
        "no message sent for redispatch_seconds: a new dispatch",
        _REAPER,
    ),
)


def allowed(function: str) -> dict[JobStatus, frozenset[JobStatus]]:
    """``function``'s allowed moves: source status → the statuses it may end in."""
    out: dict[JobStatus, set[JobStatus]] = {}
    for t in TRANSITIONS:
        if t.function == function:
            out.setdefault(t.source, set()).add(t.target)
    return {source: frozenset(targets) for source, targets in out.items()}


def markdown_table() -> str:
    """``TRANSITIONS`` as the docs print it (docs/reliability.md); rows that differ only in
    their target share a line."""
    rows: dict[tuple[str, JobStatus, str, str], list[JobStatus]] = {}
    for t in TRANSITIONS:
        rows.setdefault((t.function, t.source, t.when, t.by), []).append(t.target)
    lines = ["| function | from | to | when | called by |", "|---|---|---|---|---|"]
    for (function, source, when, by), targets in rows.items():
        to = ", ".join(f"`{target}`" for target in targets)
        lines.append(f"| `{function}` | `{source}` | {to} | {when} | {by} |")
    return "\n".join(lines)


__all__ = ["TRANSITIONS", "Transition", "allowed", "markdown_table"]
