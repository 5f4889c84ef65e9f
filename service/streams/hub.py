"""The event hub: what wakes a stream when its job or sweep may have changed.

One hub per API process, whatever the number of streams, started and stopped by the
app's lifespan (:func:`service.main.create_app`). It polls the database for every
watched key in one query per source, and with Redis it also listens to the workers'
notifications (:mod:`service.live`), which wake streams at once. What it delivers is a
hint: a stream that is woken reads SQL, and a lost hint only costs the poll's delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from service.gate import STREAM_CONNECTIONS
from service.live import CHANNEL_PATTERN, job_of

__all__ = ["EventHub", "VersionReader"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Reads the versions of some watched keys of one source (at most :data:`POLL_CHUNK`, so
#: one query with ``IN`` serves), in a worker thread; a key's version changing wakes its
#: streams, and a key missing from the answer was deleted.
VersionReader = Callable[[sessionmaker[Session], list[str]], dict[str, tuple]]
#: Keys per call of a :data:`VersionReader`.
POLL_CHUNK = 500


class EventHub:
    """Wakes the streams of a key (a job id, a sweep id) when it may have changed.

    A stream registers with :meth:`watch` and gets an :class:`asyncio.Event`; it clears
    the event *before* reading SQL, so a change that lands during the read still wakes
    it. Spurious wake-ups are harmless (the stream reads, finds nothing new, sleeps).

    Every key belongs to a source (``sources``: its name → the :data:`VersionReader` the
    poll reads it with). A Redis notification on ``descent:job:<key>`` wakes the streams
    of ``key`` whatever its source.

    The hub runs on one event loop, between :meth:`start` and :meth:`stop` (the app's
    lifespan); watching a hub that is not running is a programming error and raises.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        sources: Mapping[str, VersionReader],
        poll_seconds: float,
        redis_url: str | None,
        connections: int = STREAM_CONNECTIONS,
    ) -> None:
        self.sessions = sessions
        #: The streams' reads and the poll take turns on this many threads, each with a
        #: connection of the pool set aside for them (service/gate.py): no stream read
        #: competes with requests for theirs.
        self.connections = connections
        self._readers: anyio.CapacityLimiter | None = None
        self.sources = dict(sources)
        self.poll_seconds = poll_seconds
        self.redis_url = redis_url
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._versions: dict[str, tuple] = {}
        self._source_of: dict[str, str] = {}  # watched key -> its source
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: Whether the Redis listener is subscribed now (for tests and health).
        self.listening = False
        #: Streams open now, by their feed's source (``descent_event_streams``).
        self.open_streams: dict[str, int] = dict.fromkeys(self.sources, 0)

    @property
    def streams(self) -> int:
        """Watches held now (a sweep's stream holds one per running job too, with Redis)."""
        return sum(len(w) for w in self._watchers.values())

    @asynccontextmanager
    async def open_stream(self, source: str) -> AsyncIterator[None]:
        """Counts one stream of ``source`` in :attr:`open_streams` while it is open."""
        self.open_streams[source] = self.open_streams.get(source, 0) + 1
        try:
            yield
        finally:
            self.open_streams[source] -= 1

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def start(self) -> None:
        """Start polling (and listening to Redis) on the running event loop."""
        if self._tasks:
            raise RuntimeError("the event hub is already running")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._readers = anyio.CapacityLimiter(self.connections)
        self._tasks = [loop.create_task(self._poll_forever(), name="events-poll")]
        if self.redis_url:
            self._tasks.append(loop.create_task(self._listen_forever(), name="events-redis"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("events: the hub's task %s had failed", task.get_name())
        self._tasks = []
        self._loop = None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(self.sessions, *args)`` in a thread once one of the streams' is free (the
        wait is on the event loop, holding nothing); ``fn`` opens and closes its session."""
        self.check_running()
        assert self._readers is not None
        return await anyio.to_thread.run_sync(fn, self.sessions, *args, limiter=self._readers)

    def check_running(self) -> None:
        """Raise unless the hub runs on the current event loop: a stream on a hub that
        is not running would never be woken."""
        if not self.running or asyncio.get_running_loop() is not self._loop:
            raise RuntimeError(
                "the event hub is not running on this event loop: the app's lifespan starts "
                "it (serve the app with uvicorn, or use TestClient as a context manager)"
            )

    @asynccontextmanager
    async def watch(
        self, key: str, *, source: str, event: asyncio.Event | None = None
    ) -> AsyncIterator[asyncio.Event]:
        """Wake ``event`` (a new one unless given: one event may watch many keys) when
        ``key`` — a key of ``source`` — may have changed."""
        if source not in self.sources:
            raise ValueError(f"unknown event source {source!r}; one of {sorted(self.sources)}")
        self.check_running()
        if event is None:
            event = asyncio.Event()
        self._watchers.setdefault(key, set()).add(event)
        self._source_of[key] = source
        try:
            yield event
        finally:
            watchers = self._watchers.get(key)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[key]
                    self._versions.pop(key, None)
                    self._source_of.pop(key, None)

    def wake(self, key: str) -> None:
        for event in self._watchers.get(key, ()):
            event.set()

    def _wake_all(self) -> None:
        for key in list(self._watchers):
            self.wake(key)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            keys = list(self._watchers)
            if not keys:
                continue
            groups: dict[str, list[str]] = {}
            for key in keys:
                groups.setdefault(self._source_of[key], []).append(key)
            try:
                versions = await self.read(self._read_versions, groups)
            except Exception as exc:  # the database is down: streams wait, then go on
                log.warning("events: cannot poll the database: %s", exc)
                continue
            for key in keys:
                version = versions.get(key, ("deleted",))
                if self._versions.get(key) != version:
                    self._versions[key] = version
                    self.wake(key)

    def _read_versions(
        self, sessions: sessionmaker[Session], groups: dict[str, list[str]]
    ) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        for source, keys in groups.items():
            for i in range(0, len(keys), POLL_CHUNK):
                out.update(self.sources[source](sessions, keys[i : i + POLL_CHUNK]))
        return out

    async def _listen_forever(self) -> None:
        import redis.asyncio as aioredis

        assert self.redis_url is not None
        backoff = 1.0
        while True:
            client = aioredis.Redis.from_url(
                self.redis_url, health_check_interval=15, socket_keepalive=True
            )
            try:
                pubsub = client.pubsub()
                await pubsub.psubscribe(CHANNEL_PATTERN)
                self.listening = True
                backoff = 1.0
                # Changes made while we were not subscribed: read everything again.
                self._wake_all()
                async for message in pubsub.listen():
                    if message.get("type") == "pmessage" and (key := job_of(message["channel"])):
                        self.wake(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("events: Redis notifications lost (polling meanwhile): %s", exc)
            finally:
                self.listening = False
                with contextlib.suppress(Exception):  # the connection is already broken
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
