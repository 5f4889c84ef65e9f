"""``GET /v1/sweeps/{sweep_id}/events``: follow a sweep live (see service/sweeps/events.py)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from service.deps import (
    CurrentUser,
    DbDep,
    ResumeAfter,
    SettingsDep,
    SweepId,
    authenticated_router,
)
from service.errors import NOT_FOUND_SCHEMA
from service.streams import follow
from service.sweeps import service
from service.sweeps.event_schemas import SWEEP_EVENT_SCHEMA
from service.sweeps.events import SweepFeed

router = authenticated_router(prefix="/v1/sweeps", tags=["sweeps"])


def sweep_objective(session: Session, sweep_id: str, owner: str) -> dict[str, Any]:
    """The objective of ``owner``'s sweep ``sweep_id``; 404 for a missing id and for
    anyone else's sweep alike."""
    sweep = service.get(session=session, sweep_id=sweep_id, owner=owner)
    return dict((sweep.spec or {}).get("objective") or {})


EVENTS_DOC = """\
`text/event-stream`. `event: sweep` (status, trials by state, the best trial) on
connecting and whenever it changes; `event: trial` for each of the sweep's jobs on
connecting, then whenever a job appears (a trial starts) or changes status or attempt
(pruned, succeeded, …); `event: epoch` once per epoch any of its jobs recorded, in the
order they were recorded, with `id:` its sweep event number; `event: end` once the sweep
has ended and none of its jobs runs, after all their epochs — then the stream closes.
Every event's `id:` is the last epoch number sent so far. Each `data:` is one JSON
object, e.g.

    id: 12
    event: epoch
    data: {"sweep_id":"…","trial":3,"job_id":"…","repeat":0,"epoch":2,"metrics":{…},…}

A quiet stream gets a `: keep-alive` comment every 15 s. A stream lasts at most an hour
(`DESCENT_EVENTS_MAX_SECONDS`); reconnect with `Last-Event-ID` and no epoch is lost (the
sweep and its jobs are sent again as they are then).
"""


@router.get(
    "/{sweep_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": EVENTS_DOC,
            "content": {"text/event-stream": {"schema": SWEEP_EVENT_SCHEMA}},
        },
        404: NOT_FOUND_SCHEMA,
    },
)
async def sweep_events(
    sweep_id: SweepId,
    user: CurrentUser,
    db: DbDep,
    after: ResumeAfter,
    request: Request,
    settings: SettingsDep,
) -> StreamingResponse:
    """Follow a sweep live: its trials starting, their epochs, prunes and completions."""
    # The stream's own reads take turns of their own (EventHub.read).
    objective = await db.run(lambda session: sweep_objective(session, sweep_id, user.id))
    feed = SweepFeed(sweep_id, objective=objective)
    return follow(request.app.state.events, feed, after=after, settings=settings)
