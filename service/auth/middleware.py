"""Authentication before anything reads the request.

FastAPI reads and parses a route's body (JSON, or a multipart upload spooled to disk)
before it runs the route's dependencies, so with a dependency alone an anonymous client
would get its malformed JSON judged (422) or its 50 MB upload parsed before the 401. This
ASGI middleware, the outermost one, checks the token first: a request without a valid
one is answered 401 from its headers alone, and its body is never read. The user it
found is left in the request's state for :func:`service.deps.current_user`.

A browser signs in once (``POST /v1/session``) and is then carried by a session cookie
instead (service/auth/sessions.py): without an ``Authorization`` header, the cookie is
looked up the same way, and a request that changes state must also carry the session's
CSRF token, or it is refused (403) before its body is read.

The lookup is one call through the database gate (service/gate.py), like a handler's:
it waits for its turn on the event loop holding nothing, and its session is closed
before the route runs, so the request holds no connection when its handler's own call
waits for a turn.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from service.auth import sessions
from service.auth.models import ApiToken, User
from service.auth.service import token_holder
from service.errors import ApiError, Unauthorized, api_error_response, database_error_response
from service.gate import DatabaseGate, Departure
from service.logs import USER_ID

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where the middleware leaves the authenticated user (``request.state``): loaded once,
#: detached from its session, read by :func:`service.deps.current_user`.
USER_STATE = "descent_user"
#: The browser session a cookie-authenticated request came with (None: a bearer token).
SESSION_STATE = "descent_session"


def bearer_token(authorization: str | None) -> str:
    """The token an ``Authorization`` header carries; :class:`Unauthorized` (with the
    challenge RFC 6750 asks for) when there is none. Needs no database."""
    if not authorization:
        raise Unauthorized(
            "missing API token: send 'Authorization: Bearer <token>' "
            "(`descent token` prints the local one)"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", invalid_token=True)
    return token.strip()


def holder_of_token(*, session: Session, token: str) -> tuple[ApiToken, User]:
    """The stored token and the user it belongs to; :class:`Unauthorized` when it is not
    valid."""
    held = token_holder(session=session, token=token)
    if held is None:
        raise Unauthorized(
            "the API token is invalid, expired or revoked, or its user is disabled",
            invalid_token=True,
        )
    return held


def user_for_token(*, session: Session, token: str) -> User:
    """The user ``token`` belongs to; :class:`Unauthorized` when it is not valid."""
    return holder_of_token(session=session, token=token)[1]


def session_cookie(headers: Headers) -> str | None:
    """The secret of the session cookie a request carries, or None."""
    raw = headers.get("cookie")
    if not raw:
        return None
    return cookie_parser(raw).get(sessions.COOKIE) or None


def signed_in_by(session: Session, *, secret: str) -> sessions.SignedIn:
    """The session a cookie's secret opens; :class:`Unauthorized` when it opens none."""
    found = sessions.find(session=session, secret=secret)
    if found is None:
        raise Unauthorized(
            "the session has ended (signed out, expired, or its token revoked): sign in again"
        )
    return found


def user_for_authorization(*, session: Session, authorization: str | None) -> User:
    """The user whose token an ``Authorization`` header carries; :class:`Unauthorized`
    when there is none or it is not valid."""
    return user_for_token(session=session, token=bearer_token(authorization))


class RequireToken:
    """Answers 401 to every request unless it carries a valid token, or its path is one of
    ``public`` or starts with one of ``public_prefixes``; see the module docstring.

    A prefix should end with ``/`` (``"/static/"``), so that it covers one folder of paths
    and not every path that begins with the same letters. The path compared is the one the
    app routes by, so a public prefix reaches only the routes under it: ``/static/../v1/jobs``
    is routed to the static files (which refuse it), never to ``/v1/jobs``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        gate: DatabaseGate,
        public: frozenset[str],
        public_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.gate = gate
        self.public = public
        self.public_prefixes = public_prefixes

    def is_public(self, path: str) -> bool:
        return path in self.public or path.startswith(self.public_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        method = scope.get("method", "GET")
        if scope["type"] != "http" or self.is_public(path) or f"{method} {path}" in self.public:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorization = headers.get("authorization")
        # A bearer token wins; without one, a browser's session cookie (service/auth/sessions.py).
        cookie = None if authorization else session_cookie(headers)
        gone: Departure | None = None
        if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
            # Without a body, whether the client has gone can be asked before the lookup
            # (a request with one is checked by its handler's own call, before its work).
            gone = Departure(receive)
            receive = gone.receive
        signed_in: sessions.SignedIn | None = None
        try:
            if cookie is not None:
                signed_in = await self.gate.run(
                    functools.partial(signed_in_by, secret=cookie), gone=gone
                )
                signed_in.check_csrf(method, headers.get(sessions.CSRF_HEADER))
                user = signed_in.user
            else:
                # A missing or malformed header is refused before any database work.
                token = bearer_token(authorization)

                def lookup(session: Session) -> User:
                    return user_for_token(session=session, token=token)

                user = await self.gate.run(lookup, gone=gone)
        except ApiError as exc:  # 401, 403 csrf, 499 when the client has gone, 503 when busy
            await api_error_response(exc)(scope, receive, send)
            return
        except (DBAPIError, PoolTimeout) as exc:
            await database_error_response(exc)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[USER_STATE] = user
        state[SESSION_STATE] = signed_in
        USER_ID.set(user.id)  # the rest of the request's log lines name its user
        await self.app(scope, receive, send)
