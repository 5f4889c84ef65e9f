"""The one loop every event stream runs: read, send what is new, end or sleep, repeat.

A stream is a :class:`Feed` — what differs between a job's stream and a sweep's: how a
snapshot is read from SQL, how it becomes events, when the stream has ended — driven by
:func:`follow`, which owns what they share (docs/events.md):

- ``retry:`` first, then each event with ``id:`` = the last event number sent so far (an
  epoch's number moves it on), so a client reconnecting with ``Last-Event-ID`` (or
  ``?after=``) resumes exactly after what it got;
- history replayed in batches of :data:`BATCH` epochs, without waiting between them;
- after the end event, the stream closes; a deleted job or sweep closes it without one;
- between reads, the stream sleeps until the :class:`~service.streams.hub.EventHub`
  wakes it, sending ``: keep-alive`` every ``DESCENT_EVENTS_HEARTBEAT_SECONDS`` while
  quiet, and it closes (without an end) after ``DESCENT_EVENTS_MAX_SECONDS``.

SQL is the only source of what is sent; reads run in the thread pool, one at a time per
stream, and no thread or connection is held while a stream sleeps.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, TypeVar

from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.streams.hub import EventHub

__all__ = [
    "BATCH",
    "RETRY_MS",
    "Event",
    "Feed",
    "Step",
    "event_stream",
    "follow",
    "iso",
    "json_safe",
    "sse",
]

#: Sent first: how long a browser's EventSource waits before reconnecting (ms).
RETRY_MS = 2000
#: Epochs read per query; a long history is replayed in batches of this many.
BATCH = 500

S = TypeVar("S")
#: A key of the hub and its source: ``(source, key)``.
Watched = tuple[str, str]


@dataclass(frozen=True)
class Event:
    name: str
    data: Mapping[str, Any]
    #: The event number this event moves the stream's ``id:`` to (an epoch's), or None:
    #: it carries the last one sent.
    advance: int | None = None


@dataclass(frozen=True)
class Step:
    """What one read of a stream turned into."""

    events: list[Event]
    #: A full batch of history was read: read again at once, before any waiting.
    more: bool = False
    #: ``events`` end with the stream's end event: close the stream after them.
    ended: bool = False


class Feed(ABC, Generic[S]):
    """What one kind of stream reads and sends; :func:`follow` does the rest.

    A feed is one stream's: it remembers what it has sent (so :meth:`render` sends only
    what is new). :meth:`read` runs in a worker thread while the stream waits for it,
    so it may look at that memory but must not change it.
    """

    #: The hub source (see :class:`~service.streams.hub.EventHub`) and key whose changes
    #: wake the stream.
    source: str
    key: str

    @abstractmethod
    def read(self, sessions: sessionmaker[Session], *, after: int, limit: int) -> S:
        """Read a snapshot from SQL: the state the stream shows, then at most ``limit``
        epochs after event number ``after``."""

    @abstractmethod
    def render(self, snap: S) -> Step | None:
        """The events a snapshot adds to what was sent; None: what the stream follows
        was deleted (the stream closes without an end)."""

    def notified_by(self) -> Collection[Watched]:
        """Further ``(source, key)`` pairs whose notifications should wake the stream at
        once (asked again after each read). Watched only with Redis: without it the
        poll of :attr:`key` covers them."""
        return ()


def follow(hub: EventHub, feed: Feed[Any], *, after: int, settings: Settings) -> StreamingResponse:
    """The response that streams ``feed`` from event number ``after`` on (the caller has
    checked who may see it). Raises at once, before any byte is sent, if the hub is not
    running (it is started by the app's lifespan)."""
    hub.check_running()
    stream = _run(
        hub,
        feed,
        after=after,
        heartbeat_seconds=settings.events_heartbeat_seconds,
        max_seconds=settings.events_max_seconds,
    )
    return event_stream(stream)


async def _run(
    hub: EventHub,
    feed: Feed[Any],
    *,
    after: int,
    heartbeat_seconds: float,
    max_seconds: float,
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    cursor = after
    yield f"retry: {RETRY_MS}\n\n"
    async with (
        hub.open_stream(feed.source),
        hub.watch(feed.key, source=feed.source) as changed,
        _Watches(hub, changed) as also,
    ):
        while True:
            changed.clear()  # before reading: a change during the read wakes us again
            read = functools.partial(feed.read, after=cursor, limit=BATCH)
            step = feed.render(await hub.read(read))
            if step is None:
                return  # deleted while streaming
            if hub.redis_url:
                await also.set(feed.notified_by())
            for event in step.events:
                if event.advance is not None:
                    cursor = event.advance
                yield sse(event.name, event.data, cursor)
            if step.ended:
                return
            if step.more:
                continue  # more history to replay
            remaining = deadline - loop.time()
            if remaining <= 0:
                return  # the client reconnects with Last-Event-ID
            try:
                await asyncio.wait_for(changed.wait(), min(heartbeat_seconds, remaining))
            except TimeoutError:
                yield ": keep-alive\n\n"


class _Watches:
    """A changing set of the hub's watches, all waking one event."""

    def __init__(self, hub: EventHub, event: asyncio.Event) -> None:
        self.hub = hub
        self.event = event
        self._held: dict[Watched, AbstractAsyncContextManager[asyncio.Event]] = {}

    async def set(self, wanted: Collection[Watched]) -> None:
        wanted = set(wanted)
        for gone in [w for w in self._held if w not in wanted]:
            await self._held.pop(gone).__aexit__(None, None, None)
        for source, key in wanted - self._held.keys():
            watch = self.hub.watch(key, source=source, event=self.event)
            await watch.__aenter__()
            self._held[(source, key)] = watch

    async def __aenter__(self) -> _Watches:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.set(())


# -- the wire format -------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity (a diverged epoch may hold them): they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def sse(event: str, data: Mapping[str, Any], event_id: int) -> str:
    body = json.dumps(json_safe(data), allow_nan=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event}\ndata: {body}\n\n"


def iso(when: datetime) -> str:
    """A timestamp as events carry it: ISO 8601, UTC written ``Z``."""
    return when.isoformat().replace("+00:00", "Z")


def event_stream(stream: AsyncIterator[str]) -> StreamingResponse:
    """The HTTP response of an event stream: no caching, and no buffering by a proxy
    (nginx honours X-Accel-Buffering)."""
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
