"""``GET /v1/workers``: the fleet, for admins."""

from __future__ import annotations

from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Query
from sqlalchemy.orm import Session

from service.db import utcnow
from service.deps import AdminUser, DbDep, ProducerDep, SettingsDep, authenticated_router
from service.fleet import service
from service.fleet.schemas import FleetRead, WorkerState
from service.gate import LoopLimiter
from service.query import comma_list_pattern, split_list

#: Admins only: 403 for anyone else.
router = authenticated_router(prefix="/v1/workers", tags=["fleet"], admin=True)

#: How long the broker may take to give every queue's depth; beyond it the depths are
#: null and the rest of the answer is sent anyway.
BROKER_SECONDS = 5.0
#: The broker is asked from threads of the fleet's own, so a broker that hangs holds no
#: thread the requests need, and a page polling the fleet cannot pile up more than these.
_BROKER_THREADS = LoopLimiter(2)

LIST_DOC = f"""\
Every worker with its state, devices, versions, torch threads, concurrency and queue, its
last heartbeat and what it runs now; and every queue in use with its broker depth (messages
waiting), its queued jobs (count, oldest), its running jobs and its live workers.

A worker's `state` is what it last reported — `starting`, `ready`, `stopping`, `stopped` —
or `lost`: its heartbeat is older than the lease (`DESCENT_LEASE_SECONDS`) and it never
said it stopped (killed, or its machine gone). The reaper has already handed back a lost
worker's jobs. By default, workers that ended (stopped or lost) more than
{int(service.ENDED_SHOWN_FOR.total_seconds() // 3600)} hours ago are left out (`hidden`
counts them); `?all=true` lists them too, and `?state=` lists the workers in those
states, however old. When the broker cannot be reached the answer is still 200: each
queue's `depth` is null with `broker_error`, and `broker_reachable` is false.
"""


@router.get("", response_model=FleetRead, description=LIST_DOC)
async def list_workers(
    _: AdminUser,
    db: DbDep,
    settings: SettingsDep,
    producer: ProducerDep,
    state: Annotated[
        str | None,
        Query(
            description="Comma-separated worker states, e.g. `ready,lost`: only those, "
            "however long ago they ended.",
            json_schema_extra={"pattern": comma_list_pattern(WorkerState)},
        ),
    ] = None,
    show_all: Annotated[
        bool, Query(alias="all", description="Also the workers that ended more than a day ago.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="Workers to list at most.")] = 200,
) -> FleetRead:
    """The worker fleet and its queues (admins only)."""
    states = service.parse_states(split_list(state))
    now = utcnow()
    lease = settings.lease_seconds

    def work(session: Session) -> service.FleetRows:
        return service.read_fleet(
            session=session,
            now=now,
            lease_seconds=lease,
            default_queue=settings.queue,
            states=states,
            show_all=show_all,
            limit=limit,
        )

    rows = await db.run(work)
    names = service.queue_names(rows, settings.queue)
    depths: dict[str, int] = {}
    error: str | None = f"the broker did not answer within {BROKER_SECONDS:g} s"
    with anyio.move_on_after(BROKER_SECONDS):
        depths, error = await anyio.to_thread.run_sync(
            service.broker_depths,
            producer,
            names,
            abandon_on_cancel=True,
            limiter=_BROKER_THREADS(),
        )
    return service.assemble(
        rows, names=names, depths=depths, broker_error=error, lease_seconds=lease, now=now
    )
