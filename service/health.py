"""``GET /healthz``: whether the database and the broker answer — also while the API is
saturated, and truthfully when either is down.

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

from service.db import make_engine
from service.errors import ErrorDetail, error_body
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


class HealthCheck:
    """The checks behind ``/healthz``; :meth:`close` with the app."""

    def __init__(self, database_url: str, producer: Producer) -> None:
        self.engine = make_engine(database_url, pool_size=CONNECTIONS, pool_timeout=CHECK_SECONDS)
        self.producer = producer
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

    def close(self) -> None:
        self.engine.dispose()
