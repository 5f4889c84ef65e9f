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
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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


class WorkerSupervisor:
    """Keeps ``count`` worker processes running: a worker that dies is started again."""

    def __init__(self, count: int, env: dict[str, str]) -> None:
        self.count = count
        self.env = env
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def _spawn(self, i: int) -> None:
        cmd = [sys.executable, "-m", "workers", "--gpus", "0"]
        # A process group per worker, so its pool processes go with it.
        proc = subprocess.Popen(cmd, env=self.env, start_new_session=True)
        self.procs[i] = proc
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
        backoff = [1.0] * self.count
        while not self._stopping.wait(1.0):
            for i, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                    self._kill_group(proc, signal.SIGKILL)  # orphaned pool processes
                    log.warning(
                        "worker %d exited with %s; restarting in %.0fs",
                        i,
                        proc.returncode,
                        backoff[i],
                    )
                    if self._stopping.wait(backoff[i]):
                        return
                    backoff[i] = min(backoff[i] * 2, 30.0)
                    self._spawn(i)

    def stop(self, timeout: float = 10.0) -> None:
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
    workers: Annotated[int, typer.Option(min=1, help="Worker processes to supervise.")] = 1,
) -> None:
    """Run everything: migrations, the API and supervised worker(s) (embedded default).

    GET /readyz answers 200 once a supervised worker is ready (DESCENT_READY_NEEDS_WORKER).
    """
    if data_dir is not None:
        os.environ["DESCENT_DATA_DIR"] = str(data_dir)
    # /readyz waits for the supervised worker: ready means a job submitted now will run.
    os.environ.setdefault("DESCENT_READY_NEEDS_WORKER", "1")
    settings = _settings()
    refuse_open_bind(host, settings.auth)

    import uvicorn

    from service.auth.service import ensure_local_admin
    from service.main import create_app
    from service.migrate import upgrade

    _logging()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(str(settings.database_url))
    log.info("database ready: %s", settings.database_url)
    if ensure_local_admin(settings):
        log.info("created the local admin user and its API token")
    if settings.auth == "none":
        log.warning("DESCENT_AUTH=none: no tokens; every request acts as the local admin")
    else:
        log.info(
            "API token of the local admin: %s (`descent token` prints it; send it as "
            "'Authorization: Bearer <token>')",
            settings.token_file.resolve(),
        )
    supervisor = WorkerSupervisor(workers, dict(os.environ))
    supervisor.start()
    # uvicorn re-raises the signal that stopped it once it has shut down; with SIGTERM's
    # default action the process would die there, before stopping its workers.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level="info",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    finally:
        supervisor.stop()


#: How long open requests (event streams, above all) get to finish on shutdown; a
#: stream cut then is resumed by its client with Last-Event-ID.
GRACEFUL_SHUTDOWN_SECONDS = 3


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def api(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Run the API alone (the database must be migrated: `descent migrate`)."""
    refuse_open_bind(host, _settings().auth)

    import uvicorn

    _logging()
    uvicorn.run(
        "service.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def worker(ctx: typer.Context) -> None:
    """Run training workers: one process per visible GPU, or one on CPU.

    Options pass through to `python -m workers` (--concurrency, --loglevel, --gpus).
    """
    os.execv(sys.executable, [sys.executable, "-m", "workers", *ctx.args])


def migrate() -> None:
    """Apply database migrations (once, before the API starts)."""
    from service.migrate import upgrade

    _logging()
    settings = _settings()
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
