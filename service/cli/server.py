"""The server commands: ``descent up``, ``api``, ``worker``, ``migrate``, ``db-check``.

``descent up`` is the embedded default: migrations, the API and a supervised worker,
with SQLite files under one data directory and nothing else to install. The other
commands run one part each, for the full stack (docker-compose or your own hosts).

Unlike the user commands, these run the server: they import its modules, each inside
the command that needs it, so that the user commands and ``descent --help`` never load
the server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from service.config import Settings

log = logging.getLogger("descent")
#: Where --help lists these (and `descent admin`, `token`).
SERVER = "Run the service"

HostOpt = Annotated[str, typer.Option(help="Interface to bind.")]
PortOpt = Annotated[int, typer.Option(help="Port to listen on.")]


def _settings() -> Settings:
    from service.config import Settings

    return Settings()


def _logging(settings: Settings | None = None) -> dict[str, Any]:
    """Configure logging from DESCENT_LOG_FORMAT and DESCENT_LOG_LEVEL; returns the
    document uvicorn is given as its ``log_config``, so that its own lines (the access
    log above all) go through the same redacting handler."""
    from service.logs import setup

    settings = settings or _settings()
    return setup(settings.log_format, settings.log_level or "INFO")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; any other name or address is not."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_open_bind(host: str, auth: str) -> None:
    """Exit 2 rather than serve every job and file, unauthenticated, beyond this machine."""
    if auth == "none" and not is_loopback(host):
        typer.echo(
            f"error: refusing to listen on {host!r} with DESCENT_AUTH=none: without tokens, "
            "anyone who can reach that address could run jobs and read every result. "
            "Set DESCENT_AUTH=token (the default) and give each user a token "
            "(`descent admin create-user NAME`), or bind to 127.0.0.1.",
            err=True,
        )
        raise typer.Exit(2)


def client_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server bound to ``host``:``port`` (the
    loopback address for a server bound to every interface)."""
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Backoff:
    """The delay before a dead worker is started again: ``first`` seconds, doubled after
    each death up to ``cap``, and back to ``first`` once a worker had run for
    ``stable_seconds`` — a worker that crashes now and then after hours of work restarts
    at once, one that crashes as it starts does not spin."""

    def __init__(self, first: float = 1.0, cap: float = 30.0, stable_seconds: float = 60.0) -> None:
        self.first, self.cap, self.stable_seconds = first, cap, stable_seconds
        self._next = first

    def after_death(self, ran_seconds: float) -> float:
        """The delay before restarting a worker that died after ``ran_seconds``."""
        if ran_seconds >= self.stable_seconds:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay


#: What ``descent up`` runs per worker: one Celery worker process on CPU.
WORKER_COMMAND = (sys.executable, "-m", "workers", "--gpus", "0")


class WorkerSupervisor:
    """Keeps ``count`` worker processes running: a worker that dies is started again,
    after a delay its ``Backoff`` chooses (``restart_delays`` keeps each one, in order)."""

    def __init__(
        self,
        count: int,
        env: dict[str, str],
        *,
        command: tuple[str, ...] = WORKER_COMMAND,
        backoff: Callable[[], Backoff] = Backoff,
        poll_seconds: float = 1.0,
    ) -> None:
        self.count = count
        self.env = env
        self.command = command
        self.poll_seconds = poll_seconds
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self.started = [0.0] * count  # time.monotonic() of each worker's start
        self.backoffs = [backoff() for _ in range(count)]
        self.restart_delays: list[float] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def _spawn(self, i: int) -> None:
        # A process group per worker, so its pool processes go with it.
        proc = subprocess.Popen(list(self.command), env=self.env, start_new_session=True)
        self.procs[i] = proc
        self.started[i] = time.monotonic()
        log.info("worker %d started (pid %d)", i, proc.pid)

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def start(self) -> None:
        for i in range(self.count):
            self._spawn(i)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_seconds):
            for i, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                    self._kill_group(proc, signal.SIGKILL)  # orphaned pool processes
                    delay = self.backoffs[i].after_death(time.monotonic() - self.started[i])
                    self.restart_delays.append(delay)
                    log.warning(
                        "worker %d exited with %s; restarting in %.0fs", i, proc.returncode, delay
                    )
                    if self._stopping.wait(delay):
                        return
                    self._spawn(i)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM each worker — its running jobs hand themselves back, within
        ``DESCENT_WORKER_STOP_SECONDS`` — and SIGKILL what is left after ``timeout``."""
        self._stopping.set()
        live = [p for p in self.procs if p is not None]
        for p in live:
            # Celery's main process stops its own pool; signalling the pool processes
            # directly would only make it start new ones.
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in live:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in %.0fs; killing it", p.pid, timeout)
            self._kill_group(p, signal.SIGKILL)  # whatever is left of its process group
            p.wait()


def prepare_embedded(settings: Settings) -> None:
    """``descent up``'s start-up before it serves: a private data directory (0700, files
    0600, what an older version left readable tightened, with a warning), the temporary
    folder uploads spool to, migrations and the local admin's token."""
    from service.auth.service import ensure_local_admin
    from service.datadir import make_private, private_tmp, uses_data_dir
    from service.migrate import upgrade

    if uses_data_dir(settings):
        make_private(settings)
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    private_tmp(settings)
    upgrade(str(settings.database_url))
    log.info("database ready: %s", settings.database_url)
    if ensure_local_admin(settings):
        log.info("created the local admin user and its API token")


def worker_env(workers: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of ``descent up``'s workers: each one's torch threads are this
    host's cores shared among the ``workers`` started here (unless told otherwise)."""
    return {"DESCENT_WORKER_PROCESSES": str(workers), **environ}


#: How much longer than a worker's own bound (``DESCENT_WORKER_STOP_SECONDS``) ``descent
#: up`` waits for it to exit before it kills it.
STOP_MARGIN_SECONDS = 10.0


def up(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the database, broker and artifacts live "
            "[env DESCENT_DATA_DIR; default ./.descent]."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes to supervise; each one's torch threads default to this "
            "host's cores ÷ N (DESCENT_TORCH_THREADS overrides).",
        ),
    ] = 1,
) -> None:
    """Run everything: migrations, the API and supervised worker(s) (embedded default).

    A dead worker is restarted; on SIGTERM or Ctrl-C running jobs resume at the next start.
    The data directory is private: 0700, files 0600 (an older one is tightened).

    GET /readyz answers 200 once a supervised worker is ready (DESCENT_READY_NEEDS_WORKER).
    Timeouts, connection and upload bounds: DESCENT_* settings, docs/limits.md.
    """
    if data_dir is not None:
        os.environ["DESCENT_DATA_DIR"] = str(data_dir)
    settings = _settings()
    refuse_open_bind(host, settings.auth)
    if "DESCENT_READY_NEEDS_WORKER" not in os.environ:
        # /readyz waits for the supervised worker: ready means a job submitted now runs.
        settings.ready_needs_worker = True

    from service.main import create_app
    from service.serving import run, uvicorn_config

    log_config = _logging(settings)
    prepare_embedded(settings)
    if settings.auth == "none":
        log.warning("DESCENT_AUTH=none: no tokens; every request acts as the local admin")
    else:
        log.info(
            "API token of the local admin: %s (`descent token` prints it; send it as "
            "'Authorization: Bearer <token>')",
            settings.token_file.resolve(),
        )
    # The CLI and examples/ default to 127.0.0.1:8000; elsewhere they need telling.
    log.info("clients reach this server with: export DESCENT_URL=%s", client_url(host, port))
    supervisor = WorkerSupervisor(workers, worker_env(workers, _metrics_env(settings)))
    supervisor.start()
    # uvicorn re-raises the signal that stopped it once it has shut down; with SIGTERM's
    # default action the process would die there, before stopping its workers.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app = create_app(settings)
        run(
            uvicorn_config(
                app, host=host, port=port, settings=settings, log_config=log_config, log_level=None
            )
        )
    finally:
        supervisor.stop(timeout=settings.worker_stop_seconds + STOP_MARGIN_SECONDS)


def _metrics_env(settings: Settings) -> dict[str, str]:
    """The supervised workers' environment for their metrics: they write them to one
    folder (by default <data_dir>/metrics, emptied now), which the API's /metrics reads
    too, so one scrape shows them all. Only the workers run in multiprocess mode, not the API."""
    from service.metrics.multiproc import ENV, prepare

    folder = prepare(settings.metrics_dir or settings.data_dir / "metrics")
    settings.metrics_dir = folder
    return {**os.environ, "DESCENT_METRICS_DIR": str(folder), ENV: str(folder)}


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def api(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Run the API alone (the database must be migrated: `descent migrate`).

    Timeouts, connection and upload bounds: DESCENT_* settings, docs/limits.md.
    """
    settings = _settings()
    refuse_open_bind(host, settings.auth)

    from service.datadir import make_private, private_tmp, uses_data_dir
    from service.serving import run, uvicorn_config

    log_config = _logging(settings)
    if uses_data_dir(settings):  # the embedded default's files, served by the API alone
        make_private(settings)
    private_tmp(settings)
    config = uvicorn_config(
        "service.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        settings=settings,
        # Each process uvicorn starts configures its logging from this document.
        log_config=log_config,
        log_level=None,
    )
    run(config)


def worker(ctx: typer.Context) -> None:
    """Run training workers: one process per visible GPU, or one on CPU.

    Options pass through to `python -m workers` (--concurrency, --loglevel, --gpus).
    """
    from service.datadir import PRIVATE_UMASK, uses_data_dir

    if uses_data_dir(_settings()):  # models and checkpoints in the data dir: owner-only
        os.umask(PRIVATE_UMASK)  # (kept across the exec)
    os.execv(sys.executable, [sys.executable, "-m", "workers", *ctx.args])


def migrate() -> None:
    """Apply database migrations (once, before the API starts)."""
    from service.datadir import make_private, uses_data_dir
    from service.migrate import upgrade

    _logging()
    settings = _settings()
    if uses_data_dir(settings):  # the database file it may create is its owner's alone
        make_private(settings)
    upgrade(str(settings.database_url))
    typer.echo(f"migrated {str(settings.database_url).split('@')[-1]}")


def db_check() -> None:
    """Exit 0 when the database answers, 1 otherwise (for healthchecks)."""
    from sqlalchemy import text

    from service.db import make_engine

    engine = make_engine(str(_settings().database_url))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        typer.echo(f"database unreachable: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    typer.echo("database ok")


def register(app: typer.Typer) -> None:
    """Add the server commands to the ``descent`` app."""
    app.command(rich_help_panel=SERVER)(up)
    app.command(rich_help_panel=SERVER)(api)
    app.command(
        rich_help_panel=SERVER,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(worker)
    app.command(rich_help_panel=SERVER)(migrate)
    app.command("db-check", rich_help_panel=SERVER)(db_check)
