"""The FastAPI application: routers, error handlers and shared resources.

Importing this module must not import torch, optuna or ``workers`` (a test checks it):
the API stays small and starts in well under a second.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.config import Settings, get_settings
from service.datasets.router import router as datasets_router
from service.db import make_engine, make_sessionmaker
from service.deps import ProducerDep
from service.errors import ERROR_SCHEMA, error_body, install_error_handlers
from service.jobs.router import router as jobs_router
from service.jobs.service import limits
from service.queue import Producer
from service.spec.catalog import build_catalog

log = logging.getLogger(__name__)

DESCRIPTION = """\
Descent trains neural networks from declarative job specs. POST a job (model, dataset,
optimizer, learning-rate schedule, regularization); a Celery worker trains it with
PyTorch and records every epoch's metrics as the epoch ends.

`GET /v1/catalog` lists everything a spec accepts. Every error has the same body:
`{"error": {"status", "code", "message", "fields": [{"field", "message", "allowed"}]}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(str(settings.database_url))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="Descent",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.producer = Producer(settings)
    install_error_handlers(app)
    app.include_router(jobs_router)
    app.include_router(datasets_router)

    catalog_doc = build_catalog(limits(settings))  # fixed for the life of the app

    @app.get("/v1/catalog", tags=["catalog"])
    def catalog() -> dict[str, Any]:
        """Every dataset, model, optimizer, schedule and regularizer a job may use."""
        return catalog_doc

    @app.get("/healthz", tags=["health"], responses={503: ERROR_SCHEMA})
    def healthz(producer: ProducerDep) -> JSONResponse:
        """Whether the database and the broker are reachable (200) or not (503)."""
        checks: dict[str, str] = {}
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            log.warning("health: database unreachable: %s", exc)
            checks["database"] = "unreachable"
        try:
            producer.ping()
            checks["broker"] = "ok"
        except Exception as exc:
            log.warning("health: broker unreachable: %s", exc)
            checks["broker"] = "unreachable"
        down = [name for name, state in checks.items() if state != "ok"]
        if not down:
            return JSONResponse({"status": "ok", **checks})
        body = {"status": "unavailable", **checks}
        body |= error_body(503, "unavailable", f"unreachable: {', '.join(down)}")
        return JSONResponse(body, status_code=503)

    return app
