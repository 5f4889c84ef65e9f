"""Settings, read from ``DESCENT_*`` environment variables.

The defaults describe the embedded mode: everything lives under one data
directory (``./.descent``), the database is a SQLite file and the Celery broker
is Celery's SQLAlchemy transport on a second SQLite file. The full stack sets
``DESCENT_DATABASE_URL`` (PostgreSQL) and ``DESCENT_BROKER_URL`` (Redis).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Passwords that production refuses in DESCENT_DATABASE_URL and DESCENT_BROKER_URL.
DEFAULT_PASSWORDS = frozenset(
    {"descent", "postgres", "password", "changeme", "redis", "secret", "admin"}
)


def weak_password(url: str) -> str | None:
    """Why the password in ``url`` is not fit for production, or ``None`` if it is."""
    try:
        password = urlsplit(url).password
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        return "is not a valid URL"
    if not password:
        return "has no password"
    if unquote(password).lower() in DEFAULT_PASSWORDS:
        return "has a well-known default password"
    return None


_ORIGIN_RE = re.compile(
    r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$"
)


def parse_origins(value: str) -> list[str]:
    """``DESCENT_CORS_ORIGINS`` as a list of exact origins; ValueError naming a bad one."""
    origins = []
    for raw in value.split(","):
        origin = raw.strip()
        if not origin:
            continue
        if origin == "*" or not _ORIGIN_RE.match(origin):
            raise ValueError(
                f"DESCENT_CORS_ORIGINS: {origin!r} is not an exact origin; list origins as "
                "scheme://host[:port] (e.g. http://localhost:5173), comma-separated, "
                "without '*', paths or a trailing slash"
            )
        origins.append(origin.lower())
    return origins


class Settings(BaseSettings):
    # hide_input_in_errors: a refused URL must not echo its password into logs.
    model_config = SettingsConfigDict(
        env_prefix="DESCENT_", extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["development", "production"] = Field(
        "development", description="`production` refuses the embedded SQLite defaults."
    )
    data_dir: Path = Field(Path(".descent"), description="Root of the embedded mode's files.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text` for a terminal; `json`: one JSON object a line with request, "
        "user and job ids, for a log collector (docs/logging.md).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = Field(
        None, description="Lowest level logged; default INFO (a worker: its --loglevel)."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in the data dir."
    )
    broker_url: str | None = Field(
        None, description="Celery broker URL; default: SQLAlchemy transport on SQLite."
    )
    artifacts_dir: Path | None = Field(
        None, description="Model files and uploaded datasets; default: <data_dir>/artifacts."
    )
    queue: str = Field("descent", description="Celery queue the training tasks go to.")

    # Caps a job spec is validated against (422 above them).
    max_epochs: int = Field(1000, ge=1)
    max_parameters: int = Field(20_000_000, ge=1)
    max_synthetic_samples: int = Field(200_000, ge=10)

    # Caps on uploaded CSV datasets.
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    max_dataset_rows: int = Field(1_000_000, ge=10)
    max_dataset_columns: int = Field(1_000, ge=2)
    max_line_bytes: int = Field(1024 * 1024, ge=64)

    max_job_memory_mb: int = Field(
        8192, ge=1, description="Cap on a job's estimated memory (weights, optimizer, data)."
    )
    max_job_seconds: float = Field(
        24 * 3600, gt=0, description="Time limit of a job's training; a job may ask for less."
    )
    playground_max_steps: int = Field(
        20_000,
        ge=1,
        le=1_000_000,
        description="Most optimizer steps (steps × runs) one POST /v1/playground may ask for: "
        "the request is computed in the API process, about 60 µs a step.",
    )

    # Requests.
    auth: Literal["token", "none"] = Field(
        "token",
        description="`token`: every endpoint but /healthz, /readyz and the docs needs an API "
        "token. `none`: no accounts, every request acts as the local admin (loopback only).",
    )
    session_hours: float = Field(
        12.0,
        gt=0,
        le=24 * 90,
        description="How long a browser's sign-in (POST /v1/session) lasts; it ends sooner "
        "when its token is revoked or expires.",
    )
    local_signin: bool | None = Field(
        None,
        description="Offer the dashboard's one-click sign-in as the local admin to pages "
        "opened at localhost from this machine. Default: on for the embedded default "
        "(SQLite), off with a database server.",
    )
    cors_origins: str = Field(
        "",
        description="Comma-separated origins (scheme://host[:port]) whose pages may call the "
        "API with a bearer token, e.g. a dashboard served elsewhere. Exact origins only: "
        "no '*', no paths. Cookies are never sent across origins.",
    )
    max_request_bytes: int = Field(
        1024 * 1024, ge=1024, description="Cap on a JSON request body (uploads: max_upload_bytes)."
    )
    max_json_depth: int = Field(32, ge=4, description="Deepest nesting a JSON body may have.")

    # Slow and numerous clients (service/serving.py, service/limits.py BodyTimeout) and
    # concurrent uploads (service/datasets/slots.py).
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A connection must complete a request's headers within this long of "
        "opening, or of its previous response; else 408 and the connection is closed.",
    )
    body_timeout_seconds: float = Field(
        20.0,
        gt=0,
        description="A request's body must arrive within this long, plus one second per "
        "body_min_rate bytes received (a slow but steady upload keeps going); else 408.",
    )
    body_min_rate: int = Field(
        500, ge=1, description="Bytes per second that earn a request body one more second."
    )
    max_connections: int = Field(
        512,
        ge=1,
        description="Open connections (and requests) one API process serves at once; a "
        "request beyond is answered 503 and its connection closed. Event streams count.",
    )
    keep_alive_seconds: int = Field(
        5, ge=1, description="How long an idle keep-alive connection is kept open."
    )
    max_uploads_per_user: int = Field(
        2, ge=1, description="Dataset uploads one user may have in progress at once (429 beyond)."
    )
    max_concurrent_uploads: int = Field(
        4,
        ge=1,
        description="Dataset uploads one API process takes at once, all users together "
        "(503 beyond).",
    )

    # Predictions (POST /v1/jobs/{id}/predict, service/predict).
    predict_max_rows: int = Field(
        10_000, ge=1, description="Most rows one prediction request may carry (422 above)."
    )
    predict_max_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Cap on a prediction request's body (JSON or CSV); other requests have "
        "max_request_bytes.",
    )
    predict_cache_models: int = Field(
        16,
        ge=1,
        description="Trained models the API process keeps loaded for predictions, the least "
        "recently used dropped first.",
    )
    predict_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="onnxruntime intra-op threads per loaded model: concurrent requests "
        "already run side by side, each on a thread of its own.",
    )

    # The API process's database connections (service/gate.py).
    db_pool_size: int = Field(
        10,
        ge=1,
        le=1000,
        description="Requests of one API process that use the database at once, each with "
        "a connection of its own (the pool keeps 2 more for event streams). Others wait "
        "their turn, holding nothing.",
    )
    db_queue_seconds: float = Field(
        10.0,
        gt=0,
        description="How long a request waits for its turn at the database before it is "
        "answered 503 with Retry-After.",
    )
    db_pool_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="How long a thread waits for a free connection of the pool before the "
        "request is answered 503 (admission keeps this from happening).",
    )

    # Event streams (GET /v1/jobs/{id}/events).
    events_poll_seconds: float | None = Field(
        None,
        gt=0,
        description="How often the API looks in the database for changes to jobs someone "
        "is streaming. Default: 0.25 s with the SQL broker (the poll is how streams learn "
        "of new epochs); 2 s with Redis, whose pub/sub wakes streams at once and leaves "
        "the poll as a fallback.",
    )
    events_heartbeat_seconds: float = Field(
        15.0, gt=0, description="A comment is sent on a quiet stream this often (proxies)."
    )
    events_max_seconds: float = Field(
        3600.0,
        gt=0,
        description="A stream is closed after this long; clients reconnect with "
        "Last-Event-ID and lose nothing (a revoked token is noticed then, too).",
    )

    # Prometheus metrics (docs/monitoring.md).
    metrics_auth: Literal["token", "none"] = Field(
        "token",
        description="`token`: GET /metrics needs an admin's API token (Prometheus sends it "
        "from a credentials file). `none`: /metrics is open to anyone who can reach the "
        "API; counts of jobs, queues and requests, never a spec or a metric value.",
    )
    metrics_dir: Path | None = Field(
        None,
        description="Where worker processes write their metrics (Prometheus multiprocess "
        "mode); the API's /metrics includes them when set. `descent up` uses "
        "<data_dir>/metrics.",
    )
    worker_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port on which a worker serves its metrics for Prometheus (0: off). "
        "Unauthenticated: keep it on a private network.",
    )

    # Worker side.
    torch_threads: int = Field(
        0,
        ge=0,
        description="torch intra-op threads of each training process. 0 (the default): "
        "this host's cores shared out among its training processes, cores ÷ "
        "(DESCENT_WORKER_PROCESSES × concurrency), at least 1.",
    )
    worker_processes: int = Field(
        0,
        ge=0,
        description="Worker processes sharing this host's cores, for the default of "
        "DESCENT_TORCH_THREADS; `descent up --workers N` and `descent worker` (one process per "
        "GPU) set it for the processes they start. 0: one.",
    )
    worker_stop_seconds: float = Field(
        20.0,
        gt=0,
        description="How long a worker stopped with SIGTERM gives its running jobs to hand "
        "themselves back (at a batch boundary, or at the end of an epoch due within half "
        "of it) before it ends them; a job so ended resumes once its lease expires.",
    )
    cancel_poll_seconds: float = Field(
        0.5, gt=0, description="How often a running job looks for a cancel request."
    )
    heartbeat_seconds: float = Field(
        2.0, gt=0, description="How often a running attempt renews its lease on the job."
    )
    lease_seconds: float = Field(
        30.0, gt=0, description="A lease not renewed for this long is presumed dead."
    )
    reaper_seconds: float = Field(
        5.0, gt=0, description="How often each worker looks for jobs whose worker was lost."
    )
    sweep_poll_seconds: float = Field(
        1.0,
        gt=0,
        description="How often each worker looks for sweeps that need new trials (a new "
        "sweep starts within this; a trial's end starts the next one at once).",
    )
    max_restarts: int = Field(
        3, ge=0, description="Lost attempts a job may resume from before it fails."
    )
    redispatch_seconds: float = Field(
        600.0,
        gt=0,
        description="A job queued this long with no worker taking it is sent again, in case "
        "the broker lost its message (a Redis restart without persistence).",
    )
    ready_needs_worker: bool = Field(
        False,
        description="GET /readyz answers 200 only once a worker consuming this API's queue "
        "is ready (its heartbeat fresh). `descent up` turns it on: its API is ready when its "
        "supervised worker is. Off by default: in the full stack API and workers scale apart.",
    )
    worker_max_memory_mb: int = Field(
        0,
        ge=0,
        description="Address-space cap of a CPU worker's training process (0: none), so a "
        "job that outgrows it fails as out of memory instead of the kernel killing the worker.",
    )
    db_retry_seconds: float = Field(
        300.0, ge=0, description="How long a worker retries a database write before failing."
    )

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.lower() if info.field_name == "log_format" else value.upper()

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{(self.data_dir / 'descent.sqlite').as_posix()}"
        if self.broker_url is None:
            self.broker_url = f"sqla+sqlite:///{(self.data_dir / 'broker.sqlite').as_posix()}"
        if self.artifacts_dir is None:
            self.artifacts_dir = self.data_dir / "artifacts"
        if self.lease_seconds <= 2 * self.heartbeat_seconds:
            raise ValueError(
                "DESCENT_LEASE_SECONDS must be more than twice DESCENT_HEARTBEAT_SECONDS, or a "
                "live worker could lose its job between two heartbeats"
            )
        if self.environment == "production" and (
            self.database_url.startswith("sqlite") or self.broker_url.startswith("sqla+sqlite")
        ):
            raise ValueError(
                "DESCENT_ENVIRONMENT=production needs DESCENT_DATABASE_URL and "
                "DESCENT_BROKER_URL set to real servers (PostgreSQL and Redis), not SQLite"
            )
        parse_origins(self.cors_origins)  # refused here, at start, rather than per request
        if self.environment == "production":
            for var, url in (
                ("DESCENT_DATABASE_URL", self.database_url),
                ("DESCENT_BROKER_URL", self.broker_url),
            ):
                if problem := weak_password(url):
                    defaults = ", ".join(sorted(DEFAULT_PASSWORDS))
                    raise ValueError(
                        f"DESCENT_ENVIRONMENT=production refuses {var}: it {problem}; put a "
                        f"strong password in the URL (not empty, nor one of {defaults})"
                    )
        return self

    @property
    def jobs_dir(self) -> Path:
        assert self.artifacts_dir is not None
        return self.artifacts_dir / "jobs"

    @property
    def datasets_dir(self) -> Path:
        assert self.artifacts_dir is not None
        return self.artifacts_dir / "datasets"

    @property
    def redis_url(self) -> str | None:
        """Where live notifications go: the broker, when it is Redis; else none (the
        embedded default's streams poll the database)."""
        url = str(self.broker_url)
        return url if url.startswith(("redis://", "rediss://")) else None

    @property
    def events_poll(self) -> float:
        if self.events_poll_seconds is not None:
            return self.events_poll_seconds
        return 2.0 if self.redis_url else 0.25

    @property
    def local_signin_enabled(self) -> bool:
        if self.local_signin is not None:
            return self.local_signin
        return str(self.database_url).startswith("sqlite") and self.environment == "development"

    @property
    def cors_origin_list(self) -> list[str]:
        return parse_origins(self.cors_origins)

    @property
    def token_file(self) -> Path:
        """The embedded default's local admin token (readable by its owner only)."""
        return self.data_dir / "token"


@lru_cache
def get_settings() -> Settings:
    return Settings()
