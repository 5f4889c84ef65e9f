"""How a request reaches the database: one thread call, one session, never a deadlock.

A request that holds a database connection and then waits for a thread, while the
threads wait for connections, deadlocks the API (a sync dependency that loaded a row,
then a sync handler that needed a second thread, did exactly that under load). Here the
resources are taken in one order only, and none is held while waiting for another:

1. **Admission**, on the event loop, holding nothing: at most ``capacity`` requests use
   the database at once (``DESCENT_DB_POOL_SIZE``), first come first served. A request
   that waits longer than ``wait_seconds`` (``DESCENT_DB_QUEUE_SECONDS``) is answered 503
   with ``Retry-After``; one whose client has gone meanwhile is dropped.
2. **A thread** of the gate's own, as many as admitted requests, so it is never waited
   for (the pool that file responses and uploads share plays no part).
3. **A connection**: the engine's pool has ``capacity`` connections for requests and a
   few more for event streams, so an admitted request finds one at once; the pool's
   short timeout (``DESCENT_DB_POOL_TIMEOUT_SECONDS``) only guards against a bug.

In the thread, ``work(session)`` runs with a session that commits when it returns and
rolls back when it raises, and is closed before the thread is given back: the
connection goes back to the pool inside the same call, so no session ever commits or
touches the database on the event loop, and a response that takes long to send (a file,
an event stream) holds no connection.

A handler's database work is therefore one function of a session, run once::

    @router.get("/{job_id}/attempts")
    async def job_attempts(job_id: JobId, user: CurrentUser, db: DbDep) -> list[AttemptRead]:
        def work(session: Session) -> list[AttemptRead]:
            job = service.get(session=session, job_id=job_id, owner=user.id)
            return [AttemptRead.model_validate(a) for a in service.attempts(...)]

        return await db.run(work)
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from service.db import session_scope
from service.errors import ClientGone, Unavailable

T = TypeVar("T")
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

#: Seconds a client is told to wait before trying a busy server again.
BUSY_RETRY_AFTER = 2
#: Connections the pool keeps beyond the gate's, for the event streams' reads and their
#: hub's poll (:class:`service.jobs.events.EventHub`, which takes its turns among them).
STREAM_CONNECTIONS = 2


class LoopLimiter:
    """At most ``capacity`` of one kind of work at once: calling it gives the running
    event loop's ``CapacityLimiter`` (a test may run several loops, and a limiter belongs
    to one)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, anyio.CapacityLimiter
        ] = weakref.WeakKeyDictionary()

    def __call__(self) -> anyio.CapacityLimiter:
        loop = asyncio.get_running_loop()
        limiter = self._by_loop.get(loop)
        if limiter is None:
            limiter = self._by_loop[loop] = anyio.CapacityLimiter(self.capacity)
        return limiter


class Busy(Unavailable):
    """Every connection of the API is in use and the request waited its longest."""

    headers = {"Retry-After": str(BUSY_RETRY_AFTER)}


class DatabaseGate:
    """The API process's way to the database for requests; see the module docstring.

    ``capacity`` must not exceed the connections the engine's pool keeps for requests
    (:func:`service.main.create_app` sizes both from the same setting).
    """

    def __init__(
        self, sessions: sessionmaker[Session], *, capacity: int, wait_seconds: float
    ) -> None:
        self.sessions = sessions
        self.capacity = capacity
        self.wait_seconds = wait_seconds
        self._admission = LoopLimiter(capacity)
        self._threads = LoopLimiter(capacity)

    @property
    def admitted(self) -> int:
        """Calls holding a turn on the running event loop now (for tests)."""
        return int(self._admission().borrowed_tokens)

    @property
    def waiting(self) -> int:
        """Calls waiting for a turn on the running event loop now (for tests)."""
        return self._admission().statistics().tasks_waiting

    async def run(
        self, work: Callable[[Session], T], *, gone: Callable[[], Awaitable[bool]] | None = None
    ) -> T:
        """``work(session)`` in a thread, once admitted; its result, or what it raised.

        With ``gone`` (whether the request's client has closed its connection), a client
        that has gone before admission or while waiting for it gets no database work:
        :class:`~service.errors.ClientGone` is raised instead.
        """
        if gone is not None and await gone():
            raise ClientGone("the client closed the connection before its turn")
        admission = self._admission()
        ticket = object()  # one token per call, whatever task makes it
        with anyio.move_on_after(self.wait_seconds) as waited:
            await admission.acquire_on_behalf_of(ticket)
        if waited.cancelled_caught:
            raise Busy(
                f"the server is busy: every database connection of this API process was in "
                f"use for {self.wait_seconds:g} s (DESCENT_DB_QUEUE_SECONDS); try again shortly"
            )
        try:
            if gone is not None and await gone():
                raise ClientGone("the client closed the connection while waiting its turn")
            return await anyio.to_thread.run_sync(self._call, work, limiter=self._threads())
        finally:
            admission.release_on_behalf_of(ticket)

    def _call(self, work: Callable[[Session], T]) -> T:
        with session_scope(self.sessions) as session:
            return work(session)


class Db:
    """One request's access to the database: ``await db.run(work)`` (see the module)."""

    __slots__ = ("_gate", "_request")

    def __init__(self, gate: DatabaseGate, request: Request) -> None:
        self._gate = gate
        self._request = request

    async def run(self, work: Callable[[Session], T]) -> T:
        return await self._gate.run(work, gone=self._request.is_disconnected)


class Departure:
    """Whether the client of a request without a body has gone, asked without taking from
    the app what it reads: a message read to find out is handed back to the app, in
    order, through :meth:`receive`. (Starlette's ``Request.is_disconnected`` drops what
    it reads, which would lose a body's first part.)"""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._read: list[Message] = []
        self.gone = False

    async def __call__(self) -> bool:
        """True once the client has closed its connection; never waits."""
        if self.gone:
            return True
        message: Message | None = None
        with anyio.CancelScope() as scope:
            scope.cancel()  # take a message only if one is there already
            message = await self._receive()
        if message is not None:
            if message["type"] == "http.disconnect":
                self.gone = True
            else:
                self._read.append(message)
        return self.gone

    async def receive(self) -> Message:
        if self._read:
            return self._read.pop(0)
        if self.gone:
            return {"type": "http.disconnect"}
        return await self._receive()
