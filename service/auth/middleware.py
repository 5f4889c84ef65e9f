"""Authentication before anything reads the request.

FastAPI reads and parses a route's body (JSON, or a multipart upload spooled to disk)
before it runs the route's dependencies, so with a dependency alone an anonymous client
would get its malformed JSON judged (422) or its 50 MB upload parsed before the 401. This
ASGI middleware, the outermost one, checks the token first: a request without a valid
one is answered 401 from its headers alone, and its body is never read. The user it
found is left in the request's state for :func:`service.deps.current_user`.

The lookup is one call through the database gate (service/gate.py), like a handler's:
it waits for its turn on the event loop holding nothing, and its session is closed
before the route runs, so the request holds no connection when its handler's own call
waits for a turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.datastructures import Headers

from service.auth.models import User
from service.auth.service import authenticate
from service.errors import ApiError, Unauthorized, api_error_response, database_error_response
from service.gate import DatabaseGate, Departure

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where the middleware leaves the authenticated user (``request.state``): loaded once,
#: detached from its session, read by :func:`service.deps.current_user`.
USER_STATE = "descent_user"


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


def user_for_token(*, session: Session, token: str) -> User:
    """The user ``token`` belongs to; :class:`Unauthorized` when it is not valid."""
    user = authenticate(session=session, token=token)
    if user is None:
        raise Unauthorized(
            "the API token is invalid, expired or revoked, or its user is disabled",
            invalid_token=True,
        )
    return user


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
        if scope["type"] != "http" or self.is_public(path):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        gone: Departure | None = None
        if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
            # Without a body, whether the client has gone can be asked before the lookup
            # (a request with one is checked by its handler's own call, before its work).
            gone = Departure(receive)
            receive = gone.receive
        try:
            # A missing or malformed header is refused before any database work.
            token = bearer_token(headers.get("authorization"))

            def lookup(session: Session) -> User:
                return user_for_token(session=session, token=token)

            user = await self.gate.run(lookup, gone=gone)
        except ApiError as exc:  # 401, 499 when the client has gone, 503 when too busy
            await api_error_response(exc)(scope, receive, send)
            return
        except (DBAPIError, PoolTimeout) as exc:
            await database_error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})[USER_STATE] = user
        await self.app(scope, receive, send)
