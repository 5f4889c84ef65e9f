"""Authentication before anything reads the request.

FastAPI reads and parses a route's body (JSON, or a multipart upload spooled to disk)
before it runs the route's dependencies, so with a dependency alone an anonymous client
would get its malformed JSON judged (422) or its 50 MB upload parsed before the 401. This
ASGI middleware, the outermost one, checks the token first: a request without a valid
one is answered 401 from its headers alone, and its body is never read. The user it
found is left in the request's state for :func:`service.deps.current_user`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from service.auth.models import User
from service.auth.service import authenticate
from service.db import session_scope
from service.errors import ApiError, Unauthorized, api_error_response, database_error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where the middleware leaves the authenticated user (``request.state``): loaded once,
#: detached from its session, read by :func:`service.deps.current_user`.
USER_STATE = "descent_user"


def user_for_authorization(*, session: Session, authorization: str | None) -> User:
    """The user whose token an ``Authorization`` header carries; :class:`Unauthorized`
    (with the challenge RFC 6750 asks for) when there is none or it is not valid."""
    if not authorization:
        raise Unauthorized(
            "missing API token: send 'Authorization: Bearer <token>' "
            "(`descent token` prints the local one)"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", invalid_token=True)
    user = authenticate(session=session, token=token.strip())
    if user is None:
        raise Unauthorized(
            "the API token is invalid, expired or revoked, or its user is disabled",
            invalid_token=True,
        )
    return user


class RequireToken:
    """Answers 401 to every request but those for ``public`` paths unless it carries a
    valid token; see the module docstring."""

    def __init__(
        self, app: ASGIApp, *, sessions: sessionmaker[Session], public: frozenset[str]
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.public = public

    def _user(self, authorization: str | None) -> User:
        with session_scope(self.sessions) as session:
            return user_for_authorization(session=session, authorization=authorization)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if scope["type"] != "http" or path in self.public:
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        try:
            user = await run_in_threadpool(self._user, authorization)
        except ApiError as exc:
            await api_error_response(exc)(scope, receive, send)
            return
        except DBAPIError as exc:
            await database_error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})[USER_STATE] = user
        await self.app(scope, receive, send)
