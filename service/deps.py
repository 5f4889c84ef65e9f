"""Dependencies shared by the routers: settings, the request's database access
(``DbDep``), the task producer, the caller (``CurrentUser``, ``AdminUser``) and validated
ids.

Every dependency here is a coroutine: a plain ``def`` one would wait for a thread of the
pool, and a request's database work is one call of its handler's (service/gate.py). The
caller comes from the auth middleware, which looked it up in a call of its own before
the route ran (without it, :func:`current_user` makes that call, ended before the
handler's).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.convertors import Convertor, register_url_convertor

from service.auth.middleware import USER_STATE, user_for_authorization
from service.auth.models import ADMIN, User
from service.auth.service import local_admin
from service.auth.sessions import COOKIE as SESSION_COOKIE
from service.config import Settings
from service.errors import (
    ERROR_SCHEMA,
    FORBIDDEN_SCHEMA,
    UNAUTHORIZED_SCHEMA,
    UNAVAILABLE_SCHEMA,
    Forbidden,
)
from service.gate import Db
from service.live import Notifier
from service.logs import JOB_ID, USER_ID
from service.query import MAX_QUERY_INT
from service.queue import Producer


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _db(request: Request) -> Db:
    return Db(request.app.state.gate, request)


async def _producer(request: Request) -> Producer:
    return request.app.state.producer


async def _notifier(request: Request) -> Notifier:
    return request.app.state.notifier


SettingsDep = Annotated[Settings, Depends(_settings)]
#: The request's way to the database: ``await db.run(work)``, once (service/gate.py).
DbDep = Annotated[Db, Depends(_db)]
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


#: Declares the browser's session cookie (``POST /v1/session``) as the other way in.
session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    scheme_name="SessionCookie",
    auto_error=False,
    description="A browser's session, from `POST /v1/session`; requests that change state "
    "must also send its CSRF token as `X-CSRF-Token`.",
)


def _bind_job(request: Request) -> None:
    """A request about one job (``/v1/jobs/{job_id}…``): its log lines, the access line
    too, carry the job's id, to be joined with the worker's. Set here, in an async
    dependency every such route has, because it runs in the request's own context."""
    job_id = request.path_params.get("job_id")
    if job_id is not None and _UUID.match(job_id):
        JOB_ID.set(job_id)


async def current_user(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    _cookie: Annotated[str | None, Depends(session_cookie)],
) -> User:
    """The user whose token the request carries; 401 without a valid one.

    :class:`~service.auth.middleware.RequireToken` has checked the token before the body
    was read, and named the user; without it (``DESCENT_AUTH=none``, or an app built
    otherwise) the lookup is here, in a database call of its own that ends before the
    handler's. With ``DESCENT_AUTH=none`` every request acts as the local admin
    (loopback only: the CLI refuses to bind anywhere else in that mode).
    """
    _bind_job(request)
    user = getattr(request.state, USER_STATE, None)
    if user is not None:  # found (enabled, its token valid) by the middleware
        return user
    authorization = request.headers.get("authorization")

    def lookup(session: Session) -> User:
        if request.app.state.settings.auth == "none":
            return local_admin(session=session)
        return user_for_authorization(session=session, authorization=authorization)

    user = await request.app.state.gate.run(lookup, gone=request.is_disconnected)
    USER_ID.set(user.id)  # an async dependency: runs in the request's own context
    return user


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
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
_UUID = re.compile(UUID_PATTERN)


def _id(what: str) -> Any:
    return Path(
        pattern=UUID_PATTERN, description=f"The {what}'s id (a UUID).", examples=[_EXAMPLE_ID]
    )


# -- resuming event streams ---------------------------------------------------------


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
    EventSource sends, else after ``?after=``, else from the start (0)."""
    return min(int(last_event_id), MAX_QUERY_INT) if last_event_id else after or 0


#: The event id an event stream resumes after (`?after=` or `Last-Event-ID`).
ResumeAfter = Annotated[int, Depends(resume_after)]


class _NotEvents(Convertor[str]):
    """``{job_id:not_events}``: a path segment that is not ``events``, so that a method
    ``/v1/jobs/events`` lacks (``PATCH``) is a 405 there, as for any other method, rather
    than a 422 from ``PATCH /v1/jobs/{job_id}`` reading "events" as a malformed id."""

    regex = "(?!events$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("not_events", _NotEvents())

JobId = Annotated[str, _id("job")]
SweepId = Annotated[str, _id("sweep")]
DatasetId = Annotated[str, _id("dataset")]
UserId = Annotated[str, _id("user")]
TokenId = Annotated[str, _id("token")]
ProjectId = Annotated[str, _id("project")]
