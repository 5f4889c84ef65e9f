"""``GET /v1/jobs/{id}/events``: a job's epochs and status changes as server-sent events.

The contract:

- ``event: epoch`` once per recorded epoch, in order, with ``id:`` = the epoch;
- ``event: status`` when the stream opens and whenever the job's status or attempt
  changes (a new attempt means a lost worker was replaced and the job resumed);
- ``event: end`` once the job has ended — after every epoch it recorded — and then the
  stream closes;
- every event carries ``id:`` = the last epoch sent so far, so a client reconnecting with
  ``Last-Event-ID`` (or ``?after=``) gets exactly the epochs it missed, then live ones;
- a comment (``: keep-alive``) on a quiet stream every ``DESCENT_EVENTS_HEARTBEAT_SECONDS``.

How: SQL is the only source of what is sent. A stream reads the job row and then the
epochs after its cursor, sends them, and sleeps until :class:`EventHub` says the job may
have changed. The hub is one per API process, whatever the number of streams: it polls
the database for all watched jobs in one query, and with Redis it also listens to the
workers' notifications (:mod:`service.live`), which wake streams at once. Streams are
coroutines; each database read (:meth:`EventHub.read`) waits its turn on the event loop
for one of the few threads and connections kept for streams, uses it for a moment and
gives it back — there is no thread per stream, and no stream read competes with
requests for theirs (service/gate.py).

Reading the job row before the epochs is what makes the end exact: a job is marked ended
only after its last epoch was committed, so epochs read after an ended row are all of
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import anyio.to_thread
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.gate import STREAM_CONNECTIONS, LoopLimiter
from service.jobs.models import EpochMetric, Job, JobStatus
from service.live import CHANNEL_PATTERN, job_of

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Sent first: how long a browser's EventSource waits before reconnecting (ms).
RETRY_MS = 2000
#: Epochs read per query; a long history is replayed in batches of this many.
BATCH = 500
#: Job ids per query of the hub's poll.
POLL_CHUNK = 500


@dataclass(frozen=True)
class JobState:
    status: JobStatus
    status_reason: str | None
    attempt: int
    epochs_completed: int
    stop_epoch: int | None
    best_epoch: int | None
    best_value: float | None
    final_metrics: dict[str, float] | None


@dataclass(frozen=True)
class Snapshot:
    job: JobState | None  # None: the job was deleted
    epochs: list[tuple[int, dict[str, Any], datetime]]


def read_snapshot(sessions: sessionmaker[Session], job_id: str, after: int) -> Snapshot:
    """The job row, then up to :data:`BATCH` epochs after ``after`` — in that order."""
    with sessions() as s:
        row = s.execute(
            select(
                Job.status,
                Job.status_reason,
                Job.attempt,
                Job.epochs_completed,
                Job.stop_epoch,
                Job.best_epoch,
                Job.best_value,
                Job.final_metrics,
            ).where(Job.id == job_id)
        ).one_or_none()
        if row is None:
            return Snapshot(None, [])
        epochs = s.execute(
            select(EpochMetric.epoch, EpochMetric.values, EpochMetric.recorded_at)
            .where(EpochMetric.job_id == job_id, EpochMetric.epoch > after)
            .order_by(EpochMetric.epoch)
            .limit(BATCH)
        ).all()
    return Snapshot(JobState(*row), [tuple(e) for e in epochs])  # type: ignore[misc]


#: Reads the versions of watched keys (a change of version wakes the key's streams).
VersionReader = Callable[[sessionmaker[Session], list[str]], dict[str, tuple]]


def _versions(sessions: sessionmaker[Session], job_ids: list[str]) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    with sessions() as s:
        for i in range(0, len(job_ids), POLL_CHUNK):
            rows = s.execute(
                select(Job.id, Job.status, Job.attempt, Job.epochs_completed).where(
                    Job.id.in_(job_ids[i : i + POLL_CHUNK])
                )
            ).all()
            out.update({r[0]: tuple(r[1:]) for r in rows})
    return out


class EventHub:
    """Wakes the streams of a job when it may have changed. One per API process.

    A stream registers with :meth:`watch` and gets an :class:`asyncio.Event`; it clears
    the event *before* reading SQL, so a change that lands during the read still wakes
    it. Spurious wake-ups are harmless (the stream reads, finds nothing new, sleeps).
    The hub's tasks start with the first stream, on that stream's event loop.

    Keys are job ids unless a stream names another ``source`` (see :meth:`add_source`),
    e.g. a sweep's stream watches its sweep; a Redis notification on ``descent:job:<key>``
    wakes the streams of ``key`` whatever its source.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        poll_seconds: float,
        redis_url: str | None,
        connections: int = STREAM_CONNECTIONS,
    ) -> None:
        self.sessions = sessions
        #: The streams' reads and the poll take turns on ``connections`` threads, each
        #: with a connection of the pool set aside for them.
        self._readers = LoopLimiter(connections)
        self.poll_seconds = poll_seconds
        self.redis_url = redis_url
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._versions: dict[str, tuple] = {}
        #: source name -> its version reader; "job" is the jobs table (:func:`_versions`)
        self._sources: dict[str, VersionReader] = {}
        self._source_of: dict[str, str] = {}  # watched key -> its source, if not "job"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: Whether the Redis listener is subscribed now (for tests and health).
        self.listening = False

    @property
    def streams(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and all(not t.done() for t in self._tasks):
            return
        for task in self._tasks:
            with contextlib.suppress(RuntimeError):  # its event loop is closed
                task.cancel()
        if self._loop is not loop:
            # A new event loop (a test client opens one per request): the old loop's
            # streams are gone with it.
            self._watchers.clear()
            self._versions.clear()
            self._source_of.clear()
        self._loop = loop
        self._tasks = [loop.create_task(self._poll_forever(), name="events-poll")]
        if self.redis_url:
            self._tasks.append(loop.create_task(self._listen_forever(), name="events-redis"))

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for task in self._tasks:
            if task.get_loop() is not loop:
                continue  # another loop's task went, or goes, with its loop
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(self.sessions, *args)`` in a thread once one of the streams' is free (the
        wait is on the event loop, holding nothing); ``fn`` opens and closes its session."""
        return await anyio.to_thread.run_sync(fn, self.sessions, *args, limiter=self._readers())

    def add_source(self, name: str, read: VersionReader) -> None:
        """Let streams watch keys of another kind than jobs: the poll reads the versions
        of keys watched with ``source=name`` with ``read`` (in a worker thread)."""
        self._sources[name] = read

    @asynccontextmanager
    async def watch(
        self, job_id: str, *, source: str = "job", event: asyncio.Event | None = None
    ) -> AsyncIterator[asyncio.Event]:
        """Wake ``event`` (a new one unless given: one event may watch many keys) when
        ``job_id`` — a key of ``source`` — may have changed."""
        if source != "job" and source not in self._sources:
            raise ValueError(f"unknown event source {source!r}")
        self._ensure_running()
        if event is None:
            event = asyncio.Event()
        self._watchers.setdefault(job_id, set()).add(event)
        if source != "job":
            self._source_of[job_id] = source
        try:
            yield event
        finally:
            watchers = self._watchers.get(job_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[job_id]
                    self._versions.pop(job_id, None)
                    self._source_of.pop(job_id, None)

    def wake(self, job_id: str) -> None:
        for event in self._watchers.get(job_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for job_id in list(self._watchers):
            self.wake(job_id)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            ids = list(self._watchers)
            if not ids:
                continue
            try:
                groups: dict[str, list[str]] = {}
                for key in ids:
                    groups.setdefault(self._source_of.get(key, "job"), []).append(key)
                versions = await self.read(self._read_versions, groups)
            except Exception as exc:  # the database is down: streams wait, then go on
                log.warning("events: cannot poll the database: %s", exc)
                continue
            for job_id in ids:
                version = versions.get(job_id, ("deleted",))
                if self._versions.get(job_id) != version:
                    self._versions[job_id] = version
                    self.wake(job_id)

    def _read_versions(
        self, sessions: sessionmaker[Session], groups: dict[str, list[str]]
    ) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        for source, some in groups.items():
            read = _versions if source == "job" else self._sources[source]
            out.update(read(sessions, some))
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
                    if message.get("type") == "pmessage" and (job := job_of(message["channel"])):
                        self.wake(job)
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


# -- the stream --------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity (a diverged epoch may hold them): they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def sse(event: str, data: dict[str, Any], event_id: int) -> str:
    body = json.dumps(_finite(data), allow_nan=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event}\ndata: {body}\n\n"


def event_stream(stream: AsyncIterator[str]) -> StreamingResponse:
    """The HTTP response of an event stream: no caching, and no buffering by a proxy
    (nginx honours X-Accel-Buffering)."""
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


async def job_events(
    hub: EventHub,
    *,
    job_id: str,
    epochs: int,
    after: int,
    heartbeat_seconds: float,
    max_seconds: float,
) -> AsyncIterator[str]:
    """The event stream of job ``job_id`` (the caller has checked who may see it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    cursor = after
    shown: tuple[str, int] | None = None
    yield f"retry: {RETRY_MS}\n\n"
    async with hub.watch(job_id) as changed:
        while True:
            changed.clear()
            snap = await hub.read(read_snapshot, job_id, cursor)
            job = snap.job
            if job is None:
                return  # deleted while streaming
            # A change of status goes before the epochs read with it, an end after them:
            # the stream reads queued → running → epochs … → succeeded → end.
            state = (job.status, job.attempt)
            terminal = job.status in JobStatus.TERMINAL
            if state != shown and not terminal:
                shown = state
                yield sse("status", _status(job_id, job, epochs), cursor)
            for epoch, values, recorded_at in snap.epochs:
                cursor = epoch
                data = {
                    "job_id": job_id,
                    "epoch": epoch,
                    "epochs": epochs,
                    "metrics": values,
                    "recorded_at": _iso(recorded_at),
                }
                yield sse("epoch", data, cursor)
            if terminal and len(snap.epochs) < BATCH:
                if state != shown:
                    yield sse("status", _status(job_id, job, epochs), cursor)
                yield sse("end", _end(job_id, job, epochs), cursor)
                return
            if len(snap.epochs) == BATCH:
                continue  # more history to replay
            remaining = deadline - loop.time()
            if remaining <= 0:
                return  # the client reconnects with Last-Event-ID
            try:
                await asyncio.wait_for(changed.wait(), min(heartbeat_seconds, remaining))
            except TimeoutError:
                yield ": keep-alive\n\n"


def _status(job_id: str, job: JobState, epochs: int) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": job.status,
        "status_reason": job.status_reason,
        "attempt": job.attempt,
        "epochs_completed": job.epochs_completed,
        "epochs": epochs,
    }


def _end(job_id: str, job: JobState, epochs: int) -> dict[str, Any]:
    return {
        **_status(job_id, job, epochs),
        "stop_epoch": job.stop_epoch,
        "best_epoch": job.best_epoch,
        "best_value": job.best_value,
        "final_metrics": job.final_metrics,
    }
