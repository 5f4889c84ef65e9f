"""Request body limits, enforced before a route (or FastAPI's JSON parser) sees the body.

A pure ASGI middleware, so it never holds more of a body than the cap allows:

- ``Content-Length`` above the cap is refused at once with 413, without reading the body.
- A body without a length (chunked) is counted as it streams and refused with 413 as soon
  as it passes the cap; whatever the route had started to answer is replaced.
- The dataset upload route (``POST /v1/datasets``) may carry ``max_upload_bytes`` plus
  :data:`UPLOAD_OVERHEAD` for the multipart framing and form fields; a prediction
  (``POST /v1/jobs/{id}/predict``: up to ``predict_max_rows`` rows, as JSON or CSV)
  ``predict_max_bytes``; every other route ``max_request_bytes``.
- A JSON body (or one with no content type) is read whole, at most the cap, and scanned
  before it is passed on: anything but UTF-8 (UTF-16, Latin-1, raw NUL bytes), nesting
  deeper than ``max_json_depth`` and integer literals too long to convert are refused with
  422 (code ``invalid_json``). The scan skips over strings (and their escapes) with regular
  expressions and counts brackets with numpy, so a megabyte of ``[[[[`` costs milliseconds
  (in a worker thread above 256 KiB) and never reaches ``json.loads``, where it would
  raise ``RecursionError``. Syntax errors are left to the parser, whose error the standard
  error body reports on the field ``body``.

Around it, :func:`install_body_limits` puts :class:`BodyTimeout` (a body that arrives too
slowly: 408) and the count of dataset uploads in progress
(:class:`service.datasets.slots.UploadSlots`: 429 per user, 503 in all); see docs/limits.md.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from service.config import Settings
from service.datasets.slots import UploadSlots
from service.errors import error_body

__all__ = [
    "UPLOAD_OVERHEAD",
    "BodyLimits",
    "BodyTimeout",
    "install_body_limits",
    "json_body_problem",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Room for the multipart boundaries, part headers and the small form fields of an upload.
UPLOAD_OVERHEAD = 64 * 1024
#: Routes whose body is a file upload: (method, path).
UPLOAD_ROUTES = frozenset({("POST", "/v1/datasets")})
#: Prediction requests (POST), whose bodies carry rows of features: their own cap.
PREDICT_PATH = re.compile(r"^/v1/jobs/[^/]+/predict$")
#: Longest run of digits a JSON number may have (Python refuses to convert integers of
#: more than 4300 digits, and no spec field needs more than a handful).
MAX_NUMBER_DIGITS = 1000
#: Bodies larger than this are scanned in a worker thread rather than on the event loop.
_THREAD_SCAN_BYTES = 256 * 1024

# A JSON string, or an unterminated one running to the end of the body: possessive
# quantifiers and the end-of-input alternative keep the scan linear whatever the input.
_STRING_RE = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_LONG_NUMBER_RE = re.compile(rb"[0-9]{%d}" % (MAX_NUMBER_DIGITS + 1))
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


def install_body_limits(app: FastAPI, settings: Settings) -> None:
    """Wrap ``app`` in :class:`BodyLimits` with the caps from ``settings``."""
    app.add_middleware(
        BodyLimits,
        max_request_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        max_json_depth=settings.max_json_depth,
        max_predict_bytes=settings.predict_max_bytes,
    )
    # Concurrent uploads are counted outside the size caps (whose 413 ends an upload
    # early) and inside the token check (which names the user they are counted against).
    app.add_middleware(
        UploadSlots,
        per_user=settings.max_uploads_per_user,
        total=settings.max_concurrent_uploads,
        routes=UPLOAD_ROUTES,
    )
    # Outermost of the three, so its clock also runs while the JSON screen reads a body.
    app.add_middleware(
        BodyTimeout, seconds=settings.body_timeout_seconds, min_rate=settings.body_min_rate
    )


class _TooLarge(Exception):
    """Raised from ``receive`` when a streamed body passes its cap."""


def _format_bytes(n: int) -> str:
    if n >= 2**20:
        return f"{n:,} bytes ({n / 2**20:.1f} MiB)"
    if n >= 2**10:
        return f"{n:,} bytes ({n / 2**10:.1f} KiB)"
    return f"{n:,} bytes"


def _nesting_depth(brackets: bytes) -> int:
    """Deepest nesting reached by a sequence of bracket bytes (opens and closes)."""
    if len(brackets) <= 256:
        depth = deepest = 0
        for b in brackets:
            depth += 1 if b in _OPEN else -1
            deepest = max(deepest, depth)
        return deepest
    steps = np.frombuffer(brackets, dtype=np.uint8)
    opens = (steps == ord("[")) | (steps == ord("{"))
    return int(np.cumsum(np.where(opens, 1, -1), dtype=np.int64).max(initial=0))


def json_body_problem(body: bytes, max_depth: int) -> str | None:
    """Why ``body`` must not reach the JSON parser, or ``None`` when it may.

    Checks UTF-8 (a leading BOM is allowed), the nesting depth of arrays and objects
    outside strings, and the length of digit runs. Everything else (syntax, types, values)
    is left to the parser and the route's validation, which name the field.
    """
    text = body.removeprefix(b"\xef\xbb\xbf")
    # json.loads would guess UTF-16 or UTF-32 from NUL bytes and decode it; we take UTF-8
    # only (RFC 8259), in which JSON text never holds a raw NUL.
    if text[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in text[:4]:
        return "the body looks UTF-16 or UTF-32 encoded; send JSON encoded as UTF-8"
    nul = text.find(b"\x00")
    if nul >= 0:
        return (
            f"the body has a NUL byte at offset {nul}; JSON text cannot hold one "
            "(inside a string, write \\u0000)"
        )
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = text.count(b"\n", 0, exc.start) + 1
        return (
            f"the body is not valid UTF-8: byte 0x{text[exc.start]:02x} at offset {exc.start} "
            f"(line {line}); send JSON encoded as UTF-8"
        )
    outside = _STRING_RE.sub(b'""', text)
    brackets = outside.translate(None, _NOT_BRACKETS)
    n_open = brackets.count(b"[") + brackets.count(b"{")
    depth = _nesting_depth(brackets) if n_open > max_depth else 0
    if depth > max_depth:
        return (
            f"the JSON body nests arrays and objects {depth} levels deep; "
            f"at most {max_depth} levels are allowed"
        )
    if _LONG_NUMBER_RE.search(outside):
        return f"the JSON body has a number of more than {MAX_NUMBER_DIGITS} digits"
    return None


def _content_type(scope: Scope) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return None


def _is_json(content_type: str | None) -> bool:
    """JSON, or no content type at all (``Request.json()`` does not look at the header)."""
    if not content_type:
        return True
    kind, _, subtype = content_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def _content_length(scope: Scope) -> int | None | str:
    """The declared length, ``None`` when absent, or an error message when malformed."""
    values = [v for k, v in scope.get("headers") or () if k == b"content-length"]
    if not values:
        return None
    if len(set(values)) > 1 or not values[0].strip().isdigit():
        return "the Content-Length header is not a single non-negative integer"
    return int(values[0])


class BodyLimits:
    """Caps request bodies and screens JSON bodies; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_request_bytes: int,
        max_upload_bytes: int,
        max_json_depth: int,
        max_predict_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_predict_bytes = max_predict_bytes or max_request_bytes
        self.max_upload_bytes = max_upload_bytes + UPLOAD_OVERHEAD
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "").rstrip("/") or "/"
        method = scope.get("method", "")
        upload = (method, path) in UPLOAD_ROUTES
        kind = "upload" if upload else "request"
        cap = self.max_upload_bytes if upload else self.max_request_bytes
        if method == "POST" and PREDICT_PATH.match(path):
            kind, cap = "predict", self.max_predict_bytes

        declared = _content_length(scope)
        if isinstance(declared, str):
            await _reply(send, 400, "bad_request", declared, close=True)
            return
        if declared is not None and declared > cap:
            await _too_large(send, declared, kind=kind, cap=cap)
            return

        if not upload and _is_json(_content_type(scope)):
            await self._screen_json(scope, receive, send, cap, kind)
        else:
            await self._stream(scope, receive, send, cap, kind)

    async def _screen_json(
        self, scope: Scope, receive: Receive, send: Send, cap: int, kind: str
    ) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody reads it
                await _reply(send, 499, "client_closed_request", "the client closed the connection")
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await _too_large(send, None, kind=kind, cap=cap)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        if body:
            if len(body) > _THREAD_SCAN_BYTES:
                problem = await run_in_threadpool(json_body_problem, body, self.max_json_depth)
            else:
                problem = json_body_problem(body, self.max_json_depth)
            if problem:
                await _reply(send, 422, "invalid_json", problem)
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _stream(
        self, scope: Scope, receive: Receive, send: Send, cap: int, kind: str
    ) -> None:
        size = 0
        exceeded = False

        async def counted() -> Message:
            nonlocal size, exceeded
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > cap:
                    exceeded = True
                    raise _TooLarge
            return message

        if await _serve_cutting_off(self.app, scope, counted, send, lambda: exceeded):
            await _too_large(send, None, kind=kind, cap=cap)


async def _serve_cutting_off(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, cut: Callable[[], bool]
) -> bool:
    """Serve ``scope`` with ``receive``, which raises once it cuts the body off (and then
    makes ``cut()`` true). From then on, what the route makes of the cut-off body is not
    sent — it may have wrapped the error in one of its own (FastAPI turns a failed body
    read into a 400) — unless its answer had already started. Returns whether the body was
    cut before any answer: the caller then sends the one that says why (413, 408)."""
    started = False

    async def guarded(message: Message) -> None:
        nonlocal started
        if cut() and not started:
            return
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    try:
        await app(scope, receive, guarded)
    except Exception:
        if not cut():
            raise
    return cut() and not started


class _BodyTimedOut(Exception):
    """Raised from ``receive`` when a body is behind its deadline."""


class BodyTimeout:
    """Answers 408 (and closes the connection) when a request's body is late.

    The body must have arrived ``seconds`` after the app first asked for it, plus one
    second for every ``min_rate`` bytes received so far, as Apache's mod_reqtimeout
    counts: a client that dribbles a byte every few seconds is cut off within about
    ``seconds``, while a large upload over a slow but steady link keeps earning time. Only
    reads of the body are timed; once it is complete (or for a request without one) the
    app's later waits on ``receive`` (an event stream watching for the client to leave)
    are not. The headers' own timeout is the server's (service/serving.py).
    """

    def __init__(self, app: ASGIApp, *, seconds: float, min_rate: int) -> None:
        self.app = app
        self.seconds = seconds
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        received = 0
        complete = timed_out = False
        start: float | None = None

        async def timed() -> Message:
            nonlocal received, complete, timed_out, start
            if complete:
                return await receive()
            now = time.monotonic()
            if start is None:
                start = now
            remaining = start + self.seconds + received / self.min_rate - now
            if remaining <= 0:
                timed_out = True
                raise _BodyTimedOut
            try:
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                timed_out = True
                raise _BodyTimedOut from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        if await _serve_cutting_off(self.app, scope, timed, send, lambda: timed_out):
            message = (
                f"the request body arrived too slowly: {received:,} bytes in "
                f"{time.monotonic() - (start or 0):.0f} s; a body must arrive within "
                f"{self.seconds:g} s plus 1 s per {self.min_rate} bytes "
                "(DESCENT_BODY_TIMEOUT_SECONDS, DESCENT_BODY_MIN_RATE)"
            )
            await _reply(send, 408, "request_timeout", message, close=True)


def _has_body(scope: Scope) -> bool:
    for key, value in scope.get("headers") or ():
        if key == b"transfer-encoding" or (key == b"content-length" and value.strip() != b"0"):
            return True
    return False


async def _too_large(send: Send, size: int | None, *, kind: str, cap: int) -> None:
    """413; ``size`` is the declared Content-Length, or None for a streamed body. ``kind``:
    ``upload`` (a dataset), ``predict`` (rows to predict) or ``request`` (any other)."""
    if kind == "upload":
        allowed = (
            f"a dataset upload may be at most {_format_bytes(cap)} "
            f"(DESCENT_MAX_UPLOAD_BYTES plus {UPLOAD_OVERHEAD // 1024} KiB for the form)"
        )
    elif kind == "predict":
        allowed = (
            f"a prediction request may be at most {_format_bytes(cap)} "
            "(DESCENT_PREDICT_MAX_BYTES); send fewer rows per request"
        )
    else:
        allowed = f"a request body may be at most {_format_bytes(cap)} (DESCENT_MAX_REQUEST_BYTES)"
    if size is None:
        message = f"the request body is too large: {allowed}"
    else:
        message = f"the request body is {_format_bytes(size)}; {allowed}"
    await _reply(send, 413, "payload_too_large", message, close=True)


async def _reply(send: Send, status: int, code: str, message: str, *, close: bool = False) -> None:
    body = json.dumps(error_body(status, code, message), separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:  # the rest of the body was not read: the connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
