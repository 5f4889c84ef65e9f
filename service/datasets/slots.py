"""Bounds on dataset uploads in progress at once: per user, and in all.

An upload is streamed to a file and parsed in a worker thread: disk, a thread and tens of
megabytes for its arrays while it lasts. :class:`UploadSlots` counts the uploads an API
process has in progress and refuses one more *before its body is read*:

- a user who already has ``per_user`` uploads in progress gets ``429 Too Many Requests``
  (code ``too_many_uploads``) with ``Retry-After``;
- when the process has ``total`` in progress, any user gets ``503`` (code
  ``uploads_busy``) with ``Retry-After``.

It sits inside the token check (service/auth/middleware.py), which leaves the caller in the
request's state; without accounts (``DESCENT_AUTH=none``) every request is the local
admin's. The counts are per API process (``descent api --workers N`` allows N times as
many in all).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from service.auth.middleware import USER_STATE
from service.errors import error_body, error_schema

__all__ = ["BODY_TIMEOUT_SCHEMA", "RETRY_AFTER_SECONDS", "TOO_MANY_UPLOADS_SCHEMA", "UploadSlots"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: What ``Retry-After`` says: about the time a large upload takes to parse.
RETRY_AFTER_SECONDS = 5
#: Whose uploads are counted when there are no accounts.
_LOCAL = "local"

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "string"},
    }
}
TOO_MANY_UPLOADS_SCHEMA = error_schema(
    429,
    "too_many_uploads",
    "you have 2 dataset upload(s) in progress; at most 2 at once per user "
    "(DESCENT_MAX_UPLOADS_PER_USER): wait for one to finish",
    "You already have `DESCENT_MAX_UPLOADS_PER_USER` uploads in progress (a 503 with code "
    "`uploads_busy` says the server has `DESCENT_MAX_CONCURRENT_UPLOADS` in all)",
    headers=_RETRY_AFTER,
)
BODY_TIMEOUT_SCHEMA = error_schema(
    408,
    "request_timeout",
    "the request body arrived too slowly: 1,200 bytes in 21 s; a body must arrive within "
    "20 s plus 1 s per 500 bytes (DESCENT_BODY_TIMEOUT_SECONDS, DESCENT_BODY_MIN_RATE)",
    "The body did not arrive in time; the connection is closed",
)


class UploadSlots:
    """See the module docstring. ``routes``: the ``(method, path)`` pairs that upload."""

    def __init__(
        self, app: ASGIApp, *, per_user: int, total: int, routes: frozenset[tuple[str, str]]
    ) -> None:
        self.app = app
        self.per_user = per_user
        self.total = total
        self.routes = routes
        self.by_user: Counter[str] = Counter()

    @property
    def in_progress(self) -> int:
        return self.by_user.total()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").rstrip("/") or "/"
        if scope["type"] != "http" or (scope.get("method", ""), path) not in self.routes:
            await self.app(scope, receive, send)
            return
        user = (scope.get("state") or {}).get(USER_STATE)
        key = str(getattr(user, "id", None) or _LOCAL)
        # Checked and taken without an await between: the event loop runs one request's
        # code at a time, so two uploads cannot both take the last slot.
        if self.by_user[key] >= self.per_user:
            await _refuse(
                send,
                429,
                "too_many_uploads",
                f"you have {self.by_user[key]} dataset upload(s) in progress; at most "
                f"{self.per_user} at once per user (DESCENT_MAX_UPLOADS_PER_USER): wait for "
                "one to finish",
            )
            return
        if self.in_progress >= self.total:
            await _refuse(
                send,
                503,
                "uploads_busy",
                f"the server is parsing {self.in_progress} dataset upload(s), its limit "
                f"(DESCENT_MAX_CONCURRENT_UPLOADS={self.total}); try again shortly",
            )
            return
        self.by_user[key] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.by_user[key] -= 1
            if not self.by_user[key]:
                del self.by_user[key]


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(status, code, message), separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        # The body was not read: the connection cannot carry another request.
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
