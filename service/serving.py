"""How the API is served: the one place a uvicorn configuration is made.

``descent up`` and ``descent api`` both serve through :func:`uvicorn_config`, which sets
the limits that keep slow or numerous clients from holding the server:

- **Header timeout** (``DESCENT_HEADER_TIMEOUT_SECONDS``): a connection must complete a
  request's headers within this long of being opened, or of its previous response. h11
  and httptools parse the headers before the app runs, so no middleware can see a client
  that dribbles them; :class:`HeaderTimeout` is a uvicorn protocol that answers such a
  connection ``408 Request Timeout`` and closes it.
- **Body timeout** (``DESCENT_BODY_TIMEOUT_SECONDS``, ``DESCENT_BODY_MIN_RATE``): enforced
  by :class:`service.limits.BodyTimeout`, an ASGI middleware of the app itself.
- **Connection bound** (``DESCENT_MAX_CONNECTIONS``): uvicorn's ``limit_concurrency``;
  a request that arrives while that many connections (or requests) are open is answered
  ``503`` and its connection closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.config import Settings
from service.errors import error_body

__all__ = ["HeaderTimeout", "run", "timeout_protocol", "uvicorn_config"]

#: How long open requests (event streams, above all) get to finish on shutdown; a
#: stream cut then is resumed by its client with Last-Event-ID.
GRACEFUL_SHUTDOWN_SECONDS = 3


def _timeout_response(seconds: float) -> bytes:
    message = (
        f"the request's headers did not arrive within {seconds:g} s "
        "(DESCENT_HEADER_TIMEOUT_SECONDS); the connection is closed"
    )
    body = json.dumps(error_body(408, "request_timeout", message), separators=(",", ":"))
    return (
        b"HTTP/1.1 408 Request Timeout\r\n"
        b"content-type: application/json\r\n"
        b"content-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (len(body), body.encode())
    )


class HeaderTimeout(asyncio.Protocol):
    """Mixed into a uvicorn HTTP protocol (before it): a connection whose next request's
    headers are not complete ``config.header_timeout`` seconds after it opened, or after
    its previous response, is answered 408 and closed.

    The timer is armed when the connection opens and after each response. When it fires it
    compares the protocol's current request (``cycle``) with the one it saw when armed: a
    new one means headers did complete, and the timer does nothing (the body has a timeout
    of its own, in the app).
    """

    config: Any
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    _header_timer: asyncio.TimerHandle | None = None
    _armed_cycle: Any = None

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        seconds = getattr(self.config, "header_timeout", None)
        if seconds:
            self._armed_cycle = self.cycle
            self._header_timer = self.loop.call_later(seconds, self._header_timed_out, seconds)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self, seconds: float) -> None:
        self._header_timer = None
        if self.cycle is not self._armed_cycle or self.transport.is_closing():
            return  # a request's headers arrived in time
        self.transport.write(_timeout_response(seconds))
        self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        # Armed first: the parent may start a pipelined request at once, which the timer
        # must then see as new.
        self._arm_header_timer()
        super().on_response_complete()  # type: ignore[misc]


class H11WithTimeouts(HeaderTimeout, H11Protocol):
    """uvicorn's h11 protocol with a header timeout."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional (uvicorn[standard] brings it)
    HttpToolsWithTimeouts: type[asyncio.Protocol] | None = None
else:

    class _HttpToolsWithTimeouts(HeaderTimeout, HttpToolsProtocol):
        """uvicorn's httptools protocol (its default when installed) with a header timeout."""

    HttpToolsWithTimeouts = _HttpToolsWithTimeouts


def timeout_protocol() -> type[asyncio.Protocol]:
    """The protocol uvicorn would pick by itself (httptools when installed, else h11),
    with the header timeout."""
    return HttpToolsWithTimeouts or H11WithTimeouts


def uvicorn_config(
    app: Any,
    *,
    host: str,
    port: int,
    settings: Settings,
    workers: int = 1,
    factory: bool = False,
    log_level: str | None = "info",
    log_config: dict[str, Any] | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration of ``descent up`` and ``descent api`` (and of tests that
    serve the API as they do)."""
    # uvicorn's own logging document unless the caller's (service.logs) is given; with
    # it, ``log_level=None`` leaves the levels that document sets.
    logging_kw: dict[str, Any] = {"log_config": log_config} if log_config is not None else {}
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=workers,
        factory=factory,
        log_level=log_level,
        http=timeout_protocol(),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        **logging_kw,
    )
    # Read by HeaderTimeout through the protocol's config; an attribute of the config
    # object, so it reaches the processes of `--workers N` with it.
    config.header_timeout = settings.header_timeout_seconds  # type: ignore[attr-defined]
    return config


def run(config: uvicorn.Config) -> None:
    """Serve ``config``: in this process, or in ``config.workers`` processes."""
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # it could not bind, or the app did not start: as uvicorn.run
        raise SystemExit(3)
