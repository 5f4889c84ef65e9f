"""Which workers are alive, as every reader of the ``workers`` table judges it: the reaper
(which re-sends the jobs a gone worker held), ``/readyz`` and the fleet view.

A worker writes its state (``starting`` → ``ready`` → ``stopping`` → ``stopped``) and
heartbeats every ``heartbeat_seconds`` (workers/fleet.py). One whose heartbeat is older than
``lease_seconds`` and which never said it stopped is *lost* — the same rule, and the same
period, as a running job's lease.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from service.fleet.models import Worker

STARTING, READY, STOPPING, STOPPED = "starting", "ready", "stopping", "stopped"
#: Derived, never stored.
LOST = "lost"


def fresh_since(now: datetime, lease_seconds: float) -> datetime:
    """A heartbeat older than this is a lost worker's."""
    return now - timedelta(seconds=lease_seconds)


def alive(now: datetime, lease_seconds: float) -> ColumnElement[bool]:
    """The worker has neither stopped nor gone silent for a lease period."""
    return and_(Worker.state != STOPPED, Worker.heartbeat_at >= fresh_since(now, lease_seconds))


def lost(now: datetime, lease_seconds: float) -> ColumnElement[bool]:
    """The worker went silent for a lease period without saying it stopped."""
    return and_(Worker.state != STOPPED, Worker.heartbeat_at < fresh_since(now, lease_seconds))


def shown_state(state: str, heartbeat_at: datetime, now: datetime, lease_seconds: float) -> str:
    """A worker's stored ``state``, or ``lost`` when it went silent without stopping."""
    if state != STOPPED and heartbeat_at < fresh_since(now, lease_seconds):
        return LOST
    return state


def state_of(worker: Worker, now: datetime, lease_seconds: float) -> str:
    """:func:`shown_state` of a row."""
    return shown_state(worker.state, worker.heartbeat_at, now, lease_seconds)


def ready_on(session: Session, *, queue: str, now: datetime, lease_seconds: float) -> bool:
    """Whether a worker consuming ``queue`` is ``ready`` and alive."""
    found = session.scalar(
        select(Worker.id)
        .where(Worker.queue == queue, Worker.state == READY, alive(now, lease_seconds))
        .limit(1)
    )
    return found is not None


__all__ = [
    "LOST",
    "READY",
    "STARTING",
    "STOPPED",
    "STOPPING",
    "alive",
    "ready_on",
    "shown_state",
    "state_of",
]
