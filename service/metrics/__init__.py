"""``GET /metrics``: the API's Prometheus metrics (docs/monitoring.md lists them).

Three parts, merged into one text-format answer:

- this process's requests (:mod:`service.metrics.http`) and its own memory and CPU
  (prometheus_client's process collector);
- the service's state, read from SQL and the broker at scrape time
  (:mod:`service.metrics.service`);
- when ``DESCENT_METRICS_DIR`` is set — ``descent up`` sets it — what the worker processes
  of this machine wrote there (:mod:`service.metrics.multiproc`), and its CUDA devices
  (:mod:`service.metrics.devices`): one scrape of the embedded default shows everything.

Who may read it is ``DESCENT_METRICS_AUTH``: an admin's token (the default), or anyone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector

from service.config import Settings
from service.deps import admin_user
from service.errors import FORBIDDEN_SCHEMA, UNAUTHORIZED_SCHEMA
from service.gate import LoopLimiter
from service.metrics.devices import CudaDevices
from service.metrics.http import RequestMetrics
from service.metrics.multiproc import WorkerFiles
from service.metrics.service import Live, ServiceState

__all__ = ["PATH", "install"]

PATH = "/metrics"


class _Scrape:
    """One scrape's collectors, as ``generate_latest`` wants a registry: ``collect()``."""

    def __init__(self, parts: Iterable[Any], state: ServiceState, live: Live) -> None:
        self.parts, self.state, self.live = parts, state, live

    def collect(self) -> Iterable[Metric]:
        for part in self.parts:
            yield from part.collect()
        yield from self.state.collect(self.live)


def install(app: FastAPI, settings: Settings) -> None:
    """Count the app's requests and serve ``GET /metrics``. Call after every other
    middleware is added: the counting must be the outermost, to see refused requests."""
    # A counter's creation time doubles the series for a value Prometheus does not need.
    disable_created_metrics()
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    app.add_middleware(RequestMetrics, registry=registry)
    parts: list[Any] = [registry]
    if settings.metrics_dir is not None:
        parts += [WorkerFiles(settings.metrics_dir), CudaDevices()]
    state = ServiceState(str(settings.database_url), app.state.producer, app.state.engine)
    app.state.metrics = state
    # One scrape at a time: a second one waits for the first rather than doubling the
    # load on a database that is already slow to answer.
    limiter = LoopLimiter(1)

    dependencies = [] if settings.metrics_auth == "none" else [Depends(admin_user)]
    responses: dict[int | str, dict[str, Any]] = {
        200: {
            "content": {CONTENT_TYPE_PLAIN_0_0_4.split(";")[0]: {"schema": {"type": "string"}}},
            "description": "Prometheus text format 0.0.4.",
        }
    }
    if dependencies:
        responses |= {401: UNAUTHORIZED_SCHEMA, 403: FORBIDDEN_SCHEMA}

    @app.get(
        PATH,
        tags=["health"],
        dependencies=dependencies,
        response_class=Response,
        responses=responses,
    )
    async def metrics(request: Request) -> Response:
        """Prometheus metrics: requests, jobs, queues, sweeps, streams, database pool,
        workers (an admin's token, unless `DESCENT_METRICS_AUTH=none`)."""
        hub = request.app.state.events
        gate = request.app.state.gate
        live = Live(
            streams=dict(hub.open_streams),
            gate_admitted=gate.admitted,
            gate_waiting=gate.waiting,
            gate_capacity=gate.capacity,
        )
        # generate_latest asks its registry for collect() alone, which _Scrape has.
        scrape = cast(CollectorRegistry, _Scrape(parts, state, live))
        body = await anyio.to_thread.run_sync(generate_latest, scrape, limiter=limiter())
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
