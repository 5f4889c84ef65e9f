"""Log lines of the API and the workers: text for a terminal, JSON lines for a collector.

``DESCENT_LOG_FORMAT=json`` writes one JSON object a line — ``ts``, ``level``, ``logger``,
``message`` and, where they apply, ``request_id``, ``user_id``, ``job_id``, ``attempt``,
``dispatch`` (and ``exc_info``) — so that one job's lines can be joined across the API
and its workers (docs/logging.md). ``text`` (the default) writes the same fields as
``key=value`` after the message.

The fields come from context variables: the request middleware (:class:`RequestId`) and
the token check set the request's, the worker's runner sets the job's. Reading them
costs a few lookups per line written, and nothing at all for a line below the level.

Every line is redacted before it is written (:func:`redact`): query parameters, URL
passwords, ``Authorization``/``Cookie`` values and our own ``dsc_`` tokens never reach a
log, whichever library wrote the line — uvicorn's access log writes a request's URL
verbatim, and a client that wrongly puts its token in the query string would otherwise
leave it there in clear.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.config
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextvars import ContextVar
from typing import Any, Literal

LogFormat = Literal["text", "json"]

REQUEST_ID: ContextVar[str | None] = ContextVar("descent_request_id", default=None)
USER_ID: ContextVar[str | None] = ContextVar("descent_user_id", default=None)
JOB_ID: ContextVar[str | None] = ContextVar("descent_job_id", default=None)
ATTEMPT: ContextVar[int | None] = ContextVar("descent_attempt", default=None)
DISPATCH: ContextVar[int | None] = ContextVar("descent_dispatch", default=None)

#: The context fields, in the order a line shows them. A record's own attribute of the
#: same name (``log.info(..., extra={"job_id": ...})``) wins over the context variable.
CONTEXT: tuple[tuple[str, ContextVar[Any]], ...] = (
    ("request_id", REQUEST_ID),
    ("user_id", USER_ID),
    ("job_id", JOB_ID),
    ("attempt", ATTEMPT),
    ("dispatch", DISPATCH),
)
_VARS = dict(CONTEXT)


@contextlib.contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Set context fields (``job_id=…``, ``attempt=…``) for the block, then restore them."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


_UNSET = object()


def context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields that apply to ``record``: those stamped on it (by
    :class:`ContextFilter`, or ``extra=``), else the context's at formatting time."""
    found = {}
    for name, var in CONTEXT:
        value = getattr(record, name, _UNSET)
        if value is _UNSET:
            value = var.get()
        if value is not None:
            found[name] = value
    return found


class ContextFilter(logging.Filter):
    """Stamps the context fields on each record as its handler takes it, in the thread
    that logged it: a formatter that runs later, or elsewhere, still sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in CONTEXT:
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


# --- Redaction ---------------------------------------------------------------------------

#: Names whose values are credentials: exactly, or as the last word of a longer name
#: (``access_token``, ``client_secret``, ``x-amz-signature``, ``descent_session``).
SECRET_NAMES = (
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "key",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "session",
    "sessionid",
    "signature",
    "sig",
)
REDACTED = "[REDACTED]"
_NAME = r"(?:[\w.-]*[_.-])?(?:" + "|".join(sorted(set(SECRET_NAMES), key=len, reverse=True)) + ")"
_SCHEME = "(?:bearer|basic|token|digest)"
_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization headers keep their scheme (first: "authorization=Basic …" is a
    # name=value too, whose value would be the scheme).
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
            rf"(?:{_SCHEME}\s+)?+)(?!\[REDACTED\])[^\s\"',;<>]+"
        ),
        rf"\1{REDACTED}",
    ),
    # name=value in a query string, a cookie, a DSN ("password=…"), a form body.
    (
        re.compile(
            rf"(?i)(^|[?&;,\s]|%26)({_NAME})="
            rf"(?!\[REDACTED\]|{_SCHEME}\s+\[REDACTED\])[^&;,\s\"'<>#]+"
        ),
        rf"\1\2={REDACTED}",
    ),
    # "name": "value" and 'name': 'value' (JSON, Python reprs).
    (
        re.compile(rf"(?i)([\"']{_NAME}[\"']\s*:\s*)([\"'])(?!\[REDACTED\])[^\"']*\2"),
        rf"\1\2{REDACTED}\2",
    ),
    # A bare "Bearer <token>", wherever it is.
    (re.compile(r"(?i)(\bbearer\s+)(?!\[REDACTED\])[A-Za-z0-9._~+/-]+=*"), rf"\1{REDACTED}"),
    # Cookie headers: the whole value.
    (
        re.compile(r"(?i)(\b(?:set-)?cookie[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\])[^\r\n\"']+"),
        rf"\1{REDACTED}",
    ),
    # scheme://user:password@host
    (re.compile(r"(://[^:/@\s\"']*):(?!\[REDACTED\])[^@/\s\"']+@"), rf"\1:{REDACTED}@"),
    # Our own API tokens (service/auth/security.py), wherever they appear.
    (re.compile(r"\bdsc_[A-Za-z0-9_-]{8,}"), REDACTED),
)
#: Lines without any of these cannot hold a secret the patterns find: most lines are
#: passed by a few substring tests (under a microsecond) rather than every pattern.
_MAYBE = (
    "token", "secret", "passw", "pwd", "key", "sig", "session", "auth", "credential",
    "cookie", "bearer", "dsc_", "://",
)  # fmt: skip


def redact(text: str) -> str:
    """``text`` with every credential the patterns know replaced by ``[REDACTED]``."""
    low = text.lower()
    if not any(word in low for word in _MAYBE):
        return text
    for pattern, repl in _SUBS:
        text = pattern.sub(repl, text)
    return text


# --- Formatters --------------------------------------------------------------------------


def _timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 in UTC, to the millisecond: what collectors parse without a hint."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
        f".{int(record.msecs):03d}Z"
    )


class TextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger>: <message> [request_id=… job_id=…]``, redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        if fields := context_fields(record):
            # After the message, before a traceback; ids are ours or sane (RequestId).
            tail = " ".join(f"{k}={v}" for k, v in fields.items())
            head, sep, rest = line.partition("\n")
            line = f"{head} [{tail}]{sep}{rest}"
        return line


#: uvicorn.access's record arguments: client, method, path (with its query), HTTP
#: version, status.
_ACCESS = 5


class JsonFormatter(logging.Formatter):
    """One JSON object a line; every string in it redacted."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        doc.update(context_fields(record))
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == _ACCESS:
            client, method, path, _, status = args
            doc.update(client=client, method=method, path=redact(str(path)), status=status)
        if record.exc_info:
            doc["exc_info"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exc_info"] = redact(record.exc_text)
        if record.stack_info:
            doc["stack_info"] = redact(self.formatStack(record.stack_info))
        # ASCII: a message's own line separators (U+2028 among them) are escaped too, so
        # a line of the log is always exactly one record, whatever splits it.
        return json.dumps(doc, default=str, separators=(",", ":"))


FORMATTERS: dict[str, type[logging.Formatter]] = {"text": TextFormatter, "json": JsonFormatter}

#: Loggers that libraries give handlers of their own: sent to ours instead.
_OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task")


def config(fmt: LogFormat = "text", level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document: one redacting handler on stderr, at the
    root, for every logger. Passed to uvicorn as its ``log_config`` too, so that each
    process ``descent api --workers N`` starts configures itself the same way."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"descent": {"()": f"{__name__}.{FORMATTERS[fmt].__name__}"}},
        "filters": {"context": {"()": f"{__name__}.ContextFilter"}},
        "handlers": {
            "descent": {
                "class": "logging.StreamHandler",
                "formatter": "descent",
                "filters": ["context"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["descent"]},
        # NOTSET: the root's level rules them, whatever level an earlier set-up gave them.
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": "NOTSET"} for name in _OWN_HANDLERS
        },
    }


def setup(fmt: LogFormat = "text", level: str = "INFO") -> dict[str, Any]:
    """Configure this process's logging; returns the document (for uvicorn)."""
    doc = config(fmt, level)
    logging.config.dictConfig(doc)
    # Python's warnings (torch's, above all) become log lines too, redacted and in format.
    logging.captureWarnings(True)
    return doc


# --- Request ids -------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER = REQUEST_ID_HEADER.lower().encode()
#: An incoming id is kept only when it is short and plain: it is written into every line
#: of its request, so it must neither forge lines nor bloat them.
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestId:
    """Pure ASGI: gives each HTTP request an id — the client's ``X-Request-ID`` when it is
    sane (at most 128 of ``A-Za-z0-9._:-``), else a new random one — sets the context
    variable every log line of the request reads, and returns the id in the response's
    ``X-Request-ID`` header. The variables are left set when the request ends: uvicorn
    writes its access line (and its 500 for an unhandled error) after the app returns,
    and each request runs in a task, and so a context, of its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = b""
        for name, value in scope["headers"]:
            if name == _HEADER:
                raw = value
                break
        rid = raw if raw and _SANE_ID.fullmatch(raw) else secrets.token_hex(8).encode()
        REQUEST_ID.set(rid.decode())
        USER_ID.set(None)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (_HEADER, rid)]
            await send(message)

        await self.app(scope, receive, send_with_id)
