"""The FastAPI application: routers, error handlers and shared resources.

Importing this module must not import torch, optuna or ``workers`` (a test checks it):
the API stays small and starts in well under a second.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from service.auth.middleware import RequireToken
from service.auth.router import admin as users_router
from service.auth.router import router as accounts_router
from service.config import Settings, get_settings
from service.datasets.router import router as datasets_router
from service.db import make_engine, make_sessionmaker
from service.deps import ProducerDep, current_user
from service.errors import (
    UNAUTHORIZED_SCHEMA,
    UNAVAILABLE_SCHEMA,
    ErrorDetail,
    error_body,
    install_error_handlers,
)
from service.jobs import events as job_events
from service.jobs.router import router as jobs_router
from service.jobs.service import limits
from service.limits import install_body_limits
from service.live import Notifier
from service.playground.router import router as playground_router
from service.plots.lab_router import router as lab_plots_router
from service.plots.router import router as plots_router
from service.queue import Producer
from service.spec.catalog import build_catalog
from service.streams import EventHub
from service.sweeps import events as sweep_events
from service.sweeps.events_router import router as sweep_events_router
from service.sweeps.plots import router as sweep_plots_router
from service.sweeps.router import router as sweeps_router

log = logging.getLogger(__name__)

DESCRIPTION = """\
Descent trains neural networks from declarative job specs. POST a job (model, dataset,
optimizer, learning-rate schedule, regularization); a Celery worker trains it with
PyTorch and records every epoch's metrics as the epoch ends.

Every endpoint but `/healthz` and these docs needs an API token, sent as
`Authorization: Bearer <token>` (`descent token` prints the embedded default's local one);
jobs and datasets belong to the user who created them, and nobody else sees them.

`GET /v1/catalog` lists everything a spec accepts. Every error has the same body:
`{"error": {"status", "code", "message", "fields": [{"field", "message", "allowed"}]}}`.
"""


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
    broker: Literal["ok", "unreachable"]


class HealthDown(Health):
    error: ErrorDetail


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(str(settings.database_url))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The hub runs on the server's event loop for the app's life: every stream of
        # this process shares its one poll (and its Redis subscription).
        await app.state.events.start()
        try:
            yield
        finally:
            await app.state.events.stop()
            app.state.notifier.close()
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
    app.state.notifier = Notifier(settings.redis_url)
    app.state.events = EventHub(
        app.state.sessionmaker,
        sources={
            job_events.SOURCE: job_events.versions,
            sweep_events.SOURCE: sweep_events.versions,
        },
        poll_seconds=settings.events_poll,
        redis_url=settings.redis_url,
    )
    install_error_handlers(app)
    install_body_limits(app, settings)
    if settings.auth != "none":
        # Added last, so it runs first: no body is read before the token is checked.
        public = {app.openapi_url, app.docs_url, app.redoc_url, "/healthz"}
        if app.docs_url and app.swagger_ui_oauth2_redirect_url:
            public.add(app.swagger_ui_oauth2_redirect_url)
        app.add_middleware(
            RequireToken,
            sessions=app.state.sessionmaker,
            public=frozenset(p for p in public if p),
        )
    app.include_router(jobs_router)
    app.include_router(plots_router)
    app.include_router(lab_plots_router)
    app.include_router(playground_router)
    app.include_router(sweep_events_router)
    app.include_router(sweep_plots_router)
    app.include_router(sweeps_router)
    app.include_router(datasets_router)
    app.include_router(accounts_router)
    app.include_router(users_router)

    catalog_doc = build_catalog(limits(settings))  # fixed for the life of the app

    @app.get(
        "/v1/catalog",
        tags=["catalog"],
        dependencies=[Depends(current_user)],
        responses={401: UNAUTHORIZED_SCHEMA, 503: UNAVAILABLE_SCHEMA},
    )
    def catalog() -> dict[str, Any]:
        """Every dataset, model, optimizer, schedule and regularizer a job may use."""
        return catalog_doc

    @app.get(
        "/healthz",
        tags=["health"],
        response_model=Health,
        responses={503: {"model": HealthDown, "description": "The database or the broker is down"}},
    )
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
