"""The FastAPI application: routers, error handlers and shared resources.

Importing this module must not import torch, optuna or ``workers`` (a test checks it):
the API stays small and starts in well under a second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from service.auth.middleware import RequireToken
from service.auth.router import admin as users_router
from service.auth.router import router as accounts_router
from service.auth.session_router import PUBLIC as SIGN_IN
from service.auth.session_router import router as session_router
from service.config import Settings, get_settings
from service.dashboard import DOCS_URL, REDOC_URL, STATIC_URL
from service.dashboard import install as install_dashboard
from service.datasets.router import router as datasets_router
from service.db import make_engine, make_sessionmaker
from service.deps import current_user
from service.errors import UNAUTHORIZED_SCHEMA, UNAVAILABLE_SCHEMA, install_error_handlers
from service.fleet.router import router as fleet_router
from service.gate import STREAM_CONNECTIONS, DatabaseGate
from service.health import Health, HealthCheck, HealthDown, Ready, ReadyDown
from service.jobs import events as job_events
from service.jobs.router import router as jobs_router
from service.jobs.service import limits
from service.limits import install_body_limits
from service.live import Notifier
from service.logs import REQUEST_ID_HEADER, RequestId
from service.metrics import PATH as METRICS_PATH
from service.metrics import install as install_metrics
from service.openapi import install_generator_friendly_openapi, operation_id
from service.playground.router import router as playground_router
from service.plots.lab_router import router as lab_plots_router
from service.plots.router import router as plots_router
from service.predict.cache import ModelCache
from service.predict.router import router as predict_router
from service.projects.router import router as projects_router
from service.queue import Producer
from service.spec.catalog import build_catalog
from service.streams import EventHub
from service.sweeps import events as sweep_events
from service.sweeps.events_router import router as sweep_events_router
from service.sweeps.plots import router as sweep_plots_router
from service.sweeps.router import router as sweeps_router

DESCRIPTION = """\
Descent trains neural networks from declarative job specs. POST a job (model, dataset,
optimizer, learning-rate schedule, regularization); a Celery worker trains it with
PyTorch and records every epoch's metrics as the epoch ends.

Every endpoint but `/healthz`, `/readyz`, these docs and the dashboard's pages and files
needs an API token, sent as `Authorization: Bearer <token>` (`descent token` prints the
embedded default's local one), or, from a browser, the session cookie `POST /v1/session`
sets (writes then also send its `X-CSRF-Token`); jobs and datasets belong to the user who
created them, and nobody else sees them.

`GET /v1/catalog` lists everything a spec accepts. Every error has the same body:
`{"error": {"status", "code", "message", "fields": [{"field", "message", "allowed"}]}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Connections for the requests the gate admits, and a few for event streams: an
    # admitted request never waits for one (service/gate.py).
    engine = make_engine(
        str(settings.database_url),
        pool_size=settings.db_pool_size + STREAM_CONNECTIONS,
        pool_timeout=settings.db_pool_timeout_seconds,
    )

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
            app.state.health.close()
            app.state.metrics.close()
            engine.dispose()

    app = FastAPI(
        title="Descent",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's own pages load Swagger UI and ReDoc from a CDN: service.dashboard
        # serves them on the vendored copies instead (install_dashboard below).
        docs_url=None,
        redoc_url=None,
        # `create_job`, not `create_job_v1_jobs_post`: generated clients name methods so.
        generate_unique_id_function=operation_id,
    )
    install_generator_friendly_openapi(app)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.gate = DatabaseGate(
        app.state.sessionmaker,
        capacity=settings.db_pool_size,
        wait_seconds=settings.db_queue_seconds,
    )
    app.state.producer = Producer(settings)
    app.state.health = HealthCheck(
        str(settings.database_url),
        app.state.producer,
        worker_queue=settings.queue if settings.ready_needs_worker else None,
        lease_seconds=settings.lease_seconds,
    )
    app.state.notifier = Notifier(settings.redis_url)
    # Trained models loaded for predictions (onnxruntime sessions, imported on first use).
    app.state.model_cache = ModelCache(
        settings.predict_cache_models, threads=settings.predict_threads
    )
    app.state.events = EventHub(
        app.state.sessionmaker,
        sources={
            job_events.SOURCE: job_events.versions,
            job_events.OWNER_SOURCE: job_events.owner_versions,
            sweep_events.SOURCE: sweep_events.versions,
        },
        poll_seconds=settings.events_poll,
        redis_url=settings.redis_url,
    )
    install_error_handlers(app)
    install_body_limits(app, settings)
    if settings.auth != "none":
        # Added last, so it runs first: no body is read before the token is checked.
        public = {"/", app.openapi_url, DOCS_URL, REDOC_URL, "/healthz", "/readyz", *SIGN_IN}
        public.add(app.swagger_ui_oauth2_redirect_url)
        if settings.metrics_auth == "none":
            public.add(METRICS_PATH)
        app.add_middleware(
            RequireToken,
            gate=app.state.gate,
            public=frozenset(p for p in public if p),
            public_prefixes=(STATIC_URL + "/",),
        )
    if origins := settings.cors_origin_list:
        # Added after the token check, so it runs before it: a preflight (which carries no
        # credentials) is answered here, and every answer — a 401 too — gets the CORS
        # headers its page needs to read it. Pages of other origins send bearer tokens;
        # cookies are never allowed across origins (no allow_credentials).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=[
                "Retry-After",
                "Location",
                "Content-Disposition",
                "WWW-Authenticate",
                REQUEST_ID_HEADER,
            ],
            max_age=600,
        )
    # Added after the others, so it runs before them (only the request counting of
    # service.metrics wraps it): every line of a request, the token check's and the
    # access log's too, carries its id.
    app.add_middleware(RequestId)
    app.include_router(session_router)
    app.include_router(jobs_router)
    app.include_router(predict_router)
    app.include_router(plots_router)
    app.include_router(lab_plots_router)
    app.include_router(playground_router)
    app.include_router(sweep_events_router)
    app.include_router(sweep_plots_router)
    app.include_router(sweeps_router)
    app.include_router(datasets_router)
    app.include_router(projects_router)
    app.include_router(accounts_router)
    app.include_router(users_router)
    app.include_router(fleet_router)
    install_dashboard(app)
    install_metrics(app, settings)  # last: its request counting is the outermost middleware

    catalog_doc = build_catalog(limits(settings))  # fixed for the life of the app

    @app.get(
        "/v1/catalog",
        tags=["catalog"],
        dependencies=[Depends(current_user)],
        responses={401: UNAUTHORIZED_SCHEMA, 503: UNAVAILABLE_SCHEMA},
    )
    async def catalog() -> dict[str, Any]:
        """Every dataset, model, optimizer, schedule and regularizer a job may use."""
        return catalog_doc

    @app.get(
        "/healthz",
        tags=["health"],
        response_model=Health,
        responses={503: {"model": HealthDown, "description": "The database or the broker is down"}},
    )
    async def healthz() -> JSONResponse:
        """Whether the database and the broker are reachable (200) or not (503)."""
        return await app.state.health.answer()

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=Ready,
        responses={
            503: {
                "model": ReadyDown,
                "description": "The database or the broker is down, or no worker is ready",
            }
        },
    )
    async def readyz() -> JSONResponse:
        """Whether the API can serve and run jobs (200) or not yet (503, saying what is
        missing): the database and the broker answer and, with DESCENT_READY_NEEDS_WORKER
        (`descent up`), a worker on the API's queue is ready."""
        return await app.state.health.ready()

    return app
