"""Test helpers: real backends, real worker processes, polling.

Backends are real: a SQLite file with Celery's SQLAlchemy broker, or PostgreSQL and
Redis on 127.0.0.1 (started by `.ci/run`; a test that needs them fails loudly, with the
command to start them, rather than skipping). ``BACKENDS`` lists the pairs once, each with
its marks; tests/conftest.py supplies them as the ``backend`` fixtures.

A test that reaches PostgreSQL, serves the API or starts a worker without the matching
mark (``postgres``, ``server``, ``integration``) fails, so that ``-m`` selects the tiers
the marks promise (``make test-embedded`` runs without PostgreSQL and Redis).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("DESCENT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DESCENT_TEST_REDIS", "redis://127.0.0.1:6379/0")

#: Fixtures that serve the API with a real uvicorn (tests/browser/conftest.py; a guarded
#: page takes its live server with getfixturevalue, so it is named here too): a test that
#: uses one is marked ``server`` (tests/conftest.py).
SERVER_FIXTURES = frozenset({"live_server", "module_live_server", "page_guard"})

#: Where the documents' screenshots live; the browser tests write them there only when
#: ``DESCENT_SCREENSHOTS=1`` (``make screenshots``), into their tmp folder otherwise.
SCREENSHOTS_DIR = ROOT / "docs" / "screenshots"
SCREENSHOTS_ENV = "DESCENT_SCREENSHOTS"


def screenshots_wanted() -> bool:
    return os.environ.get(SCREENSHOTS_ENV, "") == "1"


#: The storage/broker pairs, each with the marks its tests need. Every test that runs on
#: both takes its pair from here: the ``backend`` fixtures, or ``parametrize("kind", BACKENDS)``
#: where a test makes the backend itself.
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


class _Running:
    """The marks of the test being set up or run; None outside a pytest run (a benchmark
    importing these helpers), where nothing is checked."""

    marks: frozenset[str] | None = None


def set_running_test_marks(marks: Iterable[str] | None) -> None:
    """Called by tests/conftest.py as each test's setup begins."""
    _Running.marks = None if marks is None else frozenset(marks)


def require_mark(mark: str, what: str) -> None:
    """Fail the running test unless it carries ``mark``: it does ``what``, which its tier
    (selected or left out with ``-m``) must say."""
    if _Running.marks is not None and mark not in _Running.marks:
        pytest.fail(
            f"this test {what} but is not marked `{mark}`: add @pytest.mark.{mark} (or take "
            f"the part from a fixture that implies it, see tests/conftest.py)",
            pytrace=False,
        )


@dataclass
class Backend:
    """One storage/broker pair, isolated for a test module: its own database (or file),
    its own queue name and its own artifact directory."""

    name: str
    env: dict[str, str]
    _cleanup: list = field(default_factory=list)

    def settings(self):  # noqa: ANN201
        from service.config import Settings

        return Settings(**{k.removeprefix("DESCENT_").lower(): v for k, v in self.env.items()})

    def process_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
        return {**env, **self.env, "PYTHONUNBUFFERED": "1"}

    def close(self) -> None:
        for fn in reversed(self._cleanup):
            fn()


def _sqlite_backend(tmp: Path) -> Backend:
    return Backend(
        "sqlite", {**COMMON_ENV, "DESCENT_DATA_DIR": str(tmp), "DESCENT_QUEUE": _queue()}
    )


#: Test workers share two cores with pytest and the API: one torch thread each.
COMMON_ENV = {"DESCENT_TORCH_THREADS": "1"}
#: Settings of a test that runs ``workers.runner`` in its own process: one torch thread,
#: quick heartbeats and cancels, a lease that a slow machine's pauses do not outlast.
IN_PROCESS_WORKER = {
    "torch_threads": 1,
    "heartbeat_seconds": 0.2,
    "lease_seconds": 5.0,
    "cancel_poll_seconds": 0.1,
    "db_retry_seconds": 5.0,
}


def _queue() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def _pg_admin():  # noqa: ANN202
    """A connection to PostgreSQL's admin database, once Redis answers too."""
    import psycopg
    import redis

    require_mark("postgres", "reaches PostgreSQL and Redis")
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
        redis.Redis.from_url(REDIS_URL, socket_timeout=5).ping()
    except Exception as exc:  # pragma: no cover - environment problem, reported clearly
        pytest.fail(
            f"PostgreSQL ({PG_ADMIN_URL}) and Redis ({REDIS_URL}) must be running for the "
            f"full-stack tests; `.ci/run` starts them. Error: {exc}"
        )
    return admin


def _postgres_backend(tmp: Path, *, template: str | None) -> Backend:
    name = f"descent_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    backend = Backend(
        "postgres",
        {
            **COMMON_ENV,
            "DESCENT_DATA_DIR": str(tmp),
            "DESCENT_DATABASE_URL": f"{url}/{name}",
            "DESCENT_BROKER_URL": REDIS_URL,
            "DESCENT_QUEUE": _queue(),
        },
    )

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    backend._cleanup.append(drop)
    return backend


def make_backend(kind: str, tmp: Path, *, migrate: bool = True) -> Backend:
    """A fresh backend; with ``migrate``, its database at the migrations' head: a copy of
    a template database migrated once per test run (the migrations themselves are tested
    in tests/service/test_migrations.py, which passes ``migrate=False``)."""
    if kind == "sqlite":
        backend = _sqlite_backend(tmp)
        if migrate:
            _copy_sqlite_template(str(backend.settings().database_url))
        return backend
    return _postgres_backend(tmp, template=_postgres_template() if migrate else None)


@contextlib.contextmanager
def supply_backend(kind: str, tmp: Path, *, migrate: bool = True) -> Iterator[Backend]:
    """``make_backend`` for a ``with`` block: its database is dropped when the block ends."""
    backend = make_backend(kind, tmp, migrate=migrate)
    try:
        yield backend
    finally:
        backend.close()


#: The run's migrated template databases: kind → SQLite file path or PostgreSQL name.
_TEMPLATES: dict[str, str] = {}


def _copy_sqlite_template(url: str) -> None:
    import sqlite3
    import tempfile

    from sqlalchemy import make_url

    from service.migrate import upgrade

    if "sqlite" not in _TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix="descent-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "template.sqlite"
        upgrade(f"sqlite:///{path.as_posix()}")
        _TEMPLATES["sqlite"] = str(path)
    target = make_url(url).database
    assert target is not None
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    # The backup API copies what a reader sees, WAL included.
    with (
        contextlib.closing(sqlite3.connect(_TEMPLATES["sqlite"])) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _postgres_template() -> str:
    if "postgres" in _TEMPLATES:
        return _TEMPLATES["postgres"]
    import psycopg

    from service.migrate import upgrade

    name = f"descent_template_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    upgrade(f"{url}/{name}")
    # CREATE DATABASE … TEMPLATE needs the template without sessions.
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )

    admin.close()

    def drop() -> None:
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    _TEMPLATES["postgres"] = name
    return name


def make_user(backend: Backend, name: str, *, admin: bool = False) -> str:
    """Create user ``name`` on ``backend``'s database; return a plain API token for it."""
    return make_user_at(str(backend.settings().database_url), name, admin=admin)


def make_user_at(database_url: str, name: str, *, admin: bool = False) -> str:
    """``make_user`` for a database given by its URL."""
    from service.auth import service
    from service.db import make_engine, make_sessionmaker, session_scope

    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            user = service.create_user(
                session=session, name=name, role="admin" if admin else "user"
            )
            _, plain = service.create_token(session=session, user_id=user.id, name="test")
    finally:
        engine.dispose()
    return plain


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Worker:
    """A real worker process (`python -m workers`), its output collected in a log file."""

    def __init__(self, backend: Backend, log_path: Path) -> None:
        require_mark("integration", "starts a worker process")
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers", "--gpus", "0", "--loglevel", "INFO"],
            cwd=ROOT,
            env=backend.process_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"worker did not become ready:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # Celery's main process stops its own pool
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 9)  # whatever is left of the group
        self.proc.wait()
        self._log.close()


def start_worker(backend: Backend, log_path: Path) -> Worker:
    worker = Worker(backend, log_path)
    worker.wait_ready()
    return worker


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def serve(app, host: str = "127.0.0.1"):  # noqa: ANN001, ANN201
    """Serve ``app`` with a real uvicorn server in a thread; yields its base URL."""
    import socket
    import threading

    import uvicorn

    require_mark("server", "serves the API with uvicorn")
    with socket.socket() as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, interval=0.05, what="uvicorn to start")
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
