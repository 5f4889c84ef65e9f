"""Request counts and latencies, per route template, method and status.

A pure ASGI middleware, the outermost of the app, so that refused requests (401, 413, 503)
count too. It labels a request by the route it matched (``/v1/jobs/{job_id}``, from the
``route`` the router leaves in the scope), never by its URL: the number of series stays
the number of routes. Work per request: two clock reads, one dict lookup and two
increments of series created once.

Event streams (``text/event-stream``) are counted but left out of the latency histogram:
they last up to ``DESCENT_EVENTS_MAX_SECONDS`` by design (``descent_event_streams``
counts those open).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["LATENCY_BUCKETS", "RequestMetrics", "UNMATCHED"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The ``route`` label of a request no route matched (a 404, or refused before routing).
UNMATCHED = "<unmatched>"
#: Seconds: from a cached read (ms) to a plot or an upload (seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STREAM = b"text/event-stream"


class RequestMetrics:
    """Counts every HTTP request in ``registry``: ``descent_http_requests_total`` and
    ``descent_http_request_duration_seconds`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry) -> None:
        self.app = app
        labels = ("method", "route", "status")
        self.requests = Counter(
            "descent_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels,
            registry=registry,
        )
        self.latency = Histogram(
            "descent_http_request_duration_seconds",
            "Time from a request's arrival to its last byte (event streams left out).",
            labels,
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        # Each label set's two series, made once: labels() costs a lock and a tuple.
        self._series: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raised before responding
        stream = False

        async def sending(message: Message) -> None:
            nonlocal status, stream
            if message["type"] == "http.response.start":
                status = message["status"]
                stream = any(
                    k == b"content-type" and v.startswith(_STREAM)
                    for k, v in message.get("headers", ())
                )
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            key = (scope.get("method", ""), getattr(route, "path", None) or UNMATCHED, str(status))
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = (
                    self.requests.labels(*key),
                    self.latency.labels(*key),
                )
            series[0].inc()
            if not stream:
                series[1].observe(time.perf_counter() - started)
