"""``GET /healthz``: whether the database and the broker answer — also while the API is
saturated, and truthfully when either is down. ``GET /readyz``: the same, and, where the
settings ask for it (``DESCENT_READY_NEEDS_WORKER``, set by ``descent up``), whether a
worker consuming the API's queue is ``ready`` with a fresh heartbeat (the ``workers``
table, service/fleet/liveness.py).

The database check does not queue behind requests: it has an engine of its own (two
connections at most) and threads of its own, so a full gate (service/gate.py) cannot
delay it. Both checks run at once, each given :data:`CHECK_SECONDS`; one that takes
longer counts as unreachable (its thread is left to finish on its own).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import anyio
import anyio.to_thread
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

from service.db import make_engine, utcnow
from service.errors import ErrorDetail, error_body
from service.fleet.liveness import ready_on
from service.gate import LoopLimiter
from service.queue import Producer

log = logging.getLogger(__name__)

#: How long each check may take before its part counts as unreachable.
CHECK_SECONDS = 5.0
#: The health engine's connections, and the checks' threads (database and broker).
CONNECTIONS = 2


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
    broker: Literal["ok", "unreachable"]


class HealthDown(Health):
    error: ErrorDetail


class Ready(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
    broker: Literal["ok", "unreachable"]
    worker: Literal["ready", "missing", "unknown", "not required"]


class ReadyDown(Ready):
    error: ErrorDetail


class HealthCheck:
    """The checks behind ``/healthz`` and ``/readyz``; :meth:`close` with the app.
    ``worker_queue``: ``/readyz`` also needs a ready worker on that queue (None: not)."""

    def __init__(
        self,
        database_url: str,
        producer: Producer,
        *,
        worker_queue: str | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        self.engine = make_engine(database_url, pool_size=CONNECTIONS, pool_timeout=CHECK_SECONDS)
        self.producer = producer
        self.worker_queue = worker_queue
        self.lease_seconds = lease_seconds
        self._threads = LoopLimiter(2 * CONNECTIONS)

    def _database(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def _check(self, name: str, check: Callable[[], None], out: dict[str, str]) -> None:
        out[name] = "unreachable"
        with anyio.move_on_after(CHECK_SECONDS):
            try:
                await anyio.to_thread.run_sync(
                    check, abandon_on_cancel=True, limiter=self._threads()
                )
            except Exception as exc:
                log.warning("health: %s unreachable: %s", name, exc)
                return
            out[name] = "ok"
            return
        log.warning("health: %s did not answer within %g s", name, CHECK_SECONDS)

    async def answer(self) -> JSONResponse:
        checks: dict[str, str] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._check, "database", self._database, checks)
            tg.start_soon(self._check, "broker", self.producer.ping, checks)
        checks = {name: checks[name] for name in ("database", "broker")}
        down = [name for name, state in checks.items() if state != "ok"]
        if not down:
            return JSONResponse({"status": "ok", **checks})
        body = {"status": "unavailable", **checks}
        body |= error_body(503, "unavailable", f"unreachable: {', '.join(down)}")
        return JSONResponse(body, status_code=503)

    def _worker_ready(self) -> bool:
        assert self.worker_queue is not None
        with Session(self.engine) as session:
            return ready_on(
                session, queue=self.worker_queue, now=utcnow(), lease_seconds=self.lease_seconds
            )

    async def _worker(self) -> str:
        """``ready``, ``missing`` (none is: not a fault, the API is starting), or
        ``unknown`` (the workers table could not be read in time)."""
        with anyio.move_on_after(CHECK_SECONDS):
            try:
                ready = await anyio.to_thread.run_sync(
                    self._worker_ready, abandon_on_cancel=True, limiter=self._threads()
                )
            except Exception as exc:
                log.warning("readiness: could not read the workers table: %s", exc)
                return "unknown"
            return "ready" if ready else "missing"
        return "unknown"

    async def ready(self) -> JSONResponse:
        """``/readyz``: 200 when everything it needs answers, else 503 saying what not."""
        checks: dict[str, str] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._check, "database", self._database, checks)
            tg.start_soon(self._check, "broker", self.producer.ping, checks)
        body: dict[str, object] = {name: checks[name] for name in ("database", "broker")}
        missing = [f"{name} unreachable" for name, state in body.items() if state != "ok"]
        if self.worker_queue is None:
            body["worker"] = "not required"
        elif body["database"] != "ok":
            body["worker"] = "unknown"
        else:
            body["worker"] = await self._worker()
            if body["worker"] != "ready":
                missing.append(
                    f"no worker on queue {self.worker_queue!r} is ready (one must have said "
                    "ready and heartbeat within DESCENT_LEASE_SECONDS)"
                )
        if not missing:
            return JSONResponse({"status": "ok", **body})
        body = {"status": "unavailable", **body}
        body |= error_body(503, "unavailable", f"not ready: {'; '.join(missing)}")
        return JSONResponse(body, status_code=503)

    def close(self) -> None:
        self.engine.dispose()
