"""Dependencies shared by the routers: settings, a managed session, the task producer,
the caller (``CurrentUser``, ``AdminUser``) and validated ids."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.auth.middleware import USER_STATE, user_for_authorization
from service.auth.models import ADMIN, User
from service.auth.service import local_admin
from service.config import Settings
from service.db import session_scope
from service.errors import (
    ERROR_SCHEMA,
    FORBIDDEN_SCHEMA,
    UNAUTHORIZED_SCHEMA,
    UNAVAILABLE_SCHEMA,
    Forbidden,
)
from service.live import Notifier
from service.queue import Producer


# The app-state lookups are coroutines: a plain ``def`` dependency waits for a thread of
# the pool, and a request holding a database connection (the caller's session) while it
# waits could deadlock with requests whose threads wait for connections.
async def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.sessionmaker) as session:
        yield session


async def _producer(request: Request) -> Producer:
    return request.app.state.producer


async def _notifier(request: Request) -> Notifier:
    return request.app.state.notifier


SettingsDep = Annotated[Settings, Depends(_settings)]
#: Scoped to the handler: the session is committed and its connection returned before the
#: response is sent, so a long response (an event stream, a file) holds no connection.
SessionDep = Annotated[Session, Depends(_session, scope="function")]
ProducerDep = Annotated[Producer, Depends(_producer)]
NotifierDep = Annotated[Notifier, Depends(_notifier)]


# -- who is calling -----------------------------------------------------------------

#: Declares the scheme in the OpenAPI schema; the checks are ours (auto_error=False), so
#: a missing token gets the standard error body rather than FastAPI's own.
bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="dsc_…",
    description="An API token: `descent token` prints the embedded default's local one; "
    "`POST /v1/tokens` makes more.",
)


def current_user(
    request: Request,
    session: SessionDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The user whose token the request carries; 401 without a valid one.

    :class:`~service.auth.middleware.RequireToken` has checked the token before the body
    was read, and named the user; without it (an app built otherwise) the check is here.
    With ``DESCENT_AUTH=none`` every request acts as the local admin (loopback only:
    the CLI refuses to bind anywhere else in that mode).
    """
    if request.app.state.settings.auth == "none":
        return local_admin(session=session)
    user = getattr(request.state, USER_STATE, None)
    if user is not None:  # found (enabled, its token valid) by the middleware
        return user
    return user_for_authorization(
        session=session, authorization=request.headers.get("authorization")
    )


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    """The caller, who must be an admin (403 otherwise)."""
    if user.role != ADMIN:
        raise Forbidden(f"this needs an admin's token; user {user.name!r} is not an admin")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]


def authenticated_router(*, prefix: str, tags: list[str], admin: bool = False) -> APIRouter:
    """A router every route of which needs a token (an admin's, with ``admin``), with the
    answers that follows — 401, 403, 422, 503 — documented once. Every router of the API
    but health is made here, so a route added later cannot forget the check."""
    responses: dict[int | str, dict[str, Any]] = {
        401: UNAUTHORIZED_SCHEMA,
        422: ERROR_SCHEMA,
        503: UNAVAILABLE_SCHEMA,
    }
    if admin:
        responses[403] = FORBIDDEN_SCHEMA
    return APIRouter(
        prefix=prefix,
        tags=list(tags),
        dependencies=[Depends(admin_user if admin else current_user)],
        responses=responses,
    )


# -- ids in paths -------------------------------------------------------------------

#: Ids are lowercase UUIDs, as the server issues them; anything else is a 422 naming the
#: parameter, before any lookup.
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_EXAMPLE_ID = "3f0c2a9e-5b1d-4c7e-9a4f-0d2b6c8e1f37"


def _id(what: str) -> Any:
    return Path(
        pattern=UUID_PATTERN, description=f"The {what}'s id (a UUID).", examples=[_EXAMPLE_ID]
    )


# -- numbers in query strings -------------------------------------------------------

#: The largest number a query parameter may carry: an INTEGER column's largest value. A
#: larger one would reach the database and fail there (SQLite cannot bind an integer past
#: 2**63, PostgreSQL's integer stops at 2**31 - 1) as a 500 rather than a 422.
MAX_QUERY_INT = 2**31 - 1
Offset = Annotated[int, Query(ge=0, le=MAX_QUERY_INT, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=200, description="Items per page.")]


async def resume_after(
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_QUERY_INT,
            description="Resume after this event id: only later epochs are sent (curl's "
            "way of saying `Last-Event-ID`).",
        ),
    ] = None,
    # `str`, not `str | None`: the schema then says a string of digits, never null.
    last_event_id: Annotated[
        str,
        Header(
            alias="Last-Event-ID",
            pattern=r"^[0-9]{1,10}$",
            description="The `id:` of the last event received; wins over `?after=`.",
        ),
    ] = None,  # type: ignore[assignment]
) -> int:
    """Where an event stream resumes: after the header's id, which a reconnecting
    EventSource sends, else after ``?after=``, else from the start (0). A coroutine, like
    the app-state lookups above: it runs after the caller's session is open."""
    return min(int(last_event_id), MAX_QUERY_INT) if last_event_id else after or 0


#: The event id an event stream resumes after (`?after=` or `Last-Event-ID`).
ResumeAfter = Annotated[int, Depends(resume_after)]

JobId = Annotated[str, _id("job")]
SweepId = Annotated[str, _id("sweep")]
DatasetId = Annotated[str, _id("dataset")]
UserId = Annotated[str, _id("user")]
TokenId = Annotated[str, _id("token")]


# -- work off the event loop ----------------------------------------------------------


class LoopLimiter:
    """At most ``capacity`` of one kind of CPU-bound work (renders, playground runs) at
    once, in threads: calling it gives the running event loop's ``CapacityLimiter`` (a
    test may run several loops, and a limiter belongs to one)."""

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
