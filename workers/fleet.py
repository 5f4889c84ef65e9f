"""A worker's row in the fleet registry (the ``workers`` table), kept by the worker itself.

The main process (Celery's, which owns the pool) registers at start (``starting``), says
``ready`` once it consumes, heartbeats every ``heartbeat_seconds`` in a thread with the ids
of the jobs its pool runs, and says ``stopping`` / ``stopped`` as it shuts down. A row whose
heartbeat is older than ``lease_seconds`` belongs to a lost worker (killed, its host gone):
nobody writes ``lost``, readers derive it (service/fleet/liveness.py).

Each pool process adds what only it can know — its device(s), torch's and CUDA's versions,
torch's thread count — as it starts: the main process never imports torch, since CUDA
initialised there would break the forked pool.

As the main process receives a job's message it notes that it holds it (``jobs.held_by``,
``lifecycle.hold``), so that if it dies before its pool starts the job, the reaper of any
other worker re-sends the job at once instead of after ``redispatch_seconds``.

The database may be away: every write is logged and tried again at the next beat; a worker
never stops working because its registry row could not be written.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any

from celery.signals import (
    task_received,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service import logs
from service.config import Settings, get_settings
from service.db import make_engine, make_sessionmaker, rowcount, utcnow
from service.fleet.liveness import READY, STARTING, STOPPED, STOPPING
from service.fleet.models import Worker
from service.jobs import lifecycle
from service.queue import TRAIN_JOB

log = logging.getLogger(__name__)


def worker_id(pid: int | None = None) -> str:
    """``host:pid`` of a worker's main process (``pid``: this process's by default)."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def _version() -> str | None:
    try:
        return metadata.version("descent")
    except metadata.PackageNotFoundError:
        return None


# -- the rows ------------------------------------------------------------------------------


def register(sessions: sessionmaker[Session], *, wid: str, queue: str, concurrency: int) -> None:
    """Write this worker's row as ``starting`` (a restarted worker with the same host and
    pid, as in a restarted container, starts its row afresh)."""
    now = utcnow()
    host, _, pid = wid.rpartition(":")
    values: dict[str, Any] = {
        "host": host,
        "pid": int(pid),
        "queue": queue,
        "concurrency": concurrency,
        "state": STARTING,
        "version": _version(),
        "running": [],
        "started_at": now,
        "heartbeat_at": now,
        "stopped_at": None,
    }
    with sessions() as s, s.begin():
        row = s.get(Worker, wid)
        if row is None:
            s.add(Worker(id=wid, **values))
        else:
            for key, value in values.items():
                setattr(row, key, value)


def beat(
    sessions: sessionmaker[Session], *, wid: str, state: str, running: list[str] | None = None
) -> bool:
    """A heartbeat: ``state`` and the jobs the pool runs now. False when the row is gone
    (the caller registers again)."""
    now = utcnow()
    values: dict[str, Any] = {"state": state, "heartbeat_at": now, "running": running or []}
    if state == STOPPED:
        values["stopped_at"] = now
    with sessions() as s, s.begin():
        return bool(rowcount(s.execute(update(Worker).where(Worker.id == wid).values(**values))))


def report_process(sessions: sessionmaker[Session], *, wid: str, facts: dict[str, Any]) -> bool:
    """A pool process's devices and torch facts, into its main process's row."""
    with sessions() as s, s.begin():
        return bool(rowcount(s.execute(update(Worker).where(Worker.id == wid).values(**facts))))


def process_facts() -> dict[str, Any]:
    """What this (pool) process trains on, as the ``workers`` row records it."""
    import torch

    devices: list[dict[str, Any]]
    if torch.cuda.is_available():
        devices = [
            {
                "name": torch.cuda.get_device_name(i),
                "kind": "cuda",
                "memory_bytes": int(torch.cuda.get_device_properties(i).total_memory),
            }
            for i in range(torch.cuda.device_count())
        ]
    else:
        devices = [{"name": "cpu", "kind": "cpu"}]
    return {
        "devices": devices,
        "torch_version": str(torch.__version__),
        "cuda_version": torch.version.cuda,
        "torch_threads": torch.get_num_threads(),
    }


# -- the main process's registry -----------------------------------------------------------


def _running_jobs() -> list[str]:
    """Ids of the jobs the pool runs now: the train-job requests Celery has handed to a
    pool process (a message the claim drops leaves within moments)."""
    from celery.worker import state

    for _ in range(3):
        try:
            requests = list(state.active_requests)
        except RuntimeError:  # changed size while the consumer's thread updated it
            continue
        return sorted({str(r.args[0]) for r in requests if r.name == TRAIN_JOB and r.args})
    return []


class Registry:
    """The main process's row: registration, heartbeats in a daemon thread, holds."""

    def __init__(self, settings: Settings, *, concurrency: int) -> None:
        self.settings = settings
        self.wid = worker_id()
        self.concurrency = concurrency
        self.engine: Engine = make_engine(str(settings.database_url))
        self.sessions = make_sessionmaker(self.engine)
        self.state = STARTING
        self._registered = False
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="descent-fleet", daemon=True)
        # Holds are written off the consumer's thread: a slow database must not stall it.
        self._holds = ThreadPoolExecutor(max_workers=1, thread_name_prefix="descent-hold")

    def start(self) -> None:
        self._write()
        self._thread.start()

    def set_state(self, state: str) -> None:
        """Written at the next beat; ``ready`` is written at once."""
        self.state = state
        if state == READY:
            self._write()

    def stop(self) -> None:
        """The worker has stopped: say so, once, and end the thread."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._holds.shutdown(wait=True, cancel_futures=False)
        self.state = STOPPED
        self._write()
        self.engine.dispose()

    def hold(self, job_id: str, dispatch: int) -> None:
        try:
            self._holds.submit(self._hold, job_id, dispatch)
        except RuntimeError:  # stopped: the message goes back to the broker unstarted
            with logs.bound(job_id=job_id, dispatch=dispatch):
                log.info("job %s: message received while stopping; not held", job_id)

    def _hold(self, job_id: str, dispatch: int) -> None:
        # A thread of its own: its lines carry the job's fields only if bound here.
        with logs.bound(job_id=job_id, dispatch=dispatch):
            self._note_held(job_id, dispatch)

    def _note_held(self, job_id: str, dispatch: int) -> None:
        try:
            with self.sessions() as s, s.begin():
                held = lifecycle.hold(
                    s, job_id=job_id, dispatch=dispatch, worker=self.wid, now=utcnow()
                )
            if held:
                log.info("job %s: message of dispatch %d received", job_id, dispatch)
        except Exception as exc:
            # Without the note the job is still recovered, by the empty-queue check or at
            # worst by redispatch_seconds.
            log.warning("job %s: could not note the message as held: %s", job_id, exc)

    def _write(self) -> None:
        try:
            running = [] if self.state == STOPPED else _running_jobs()
            if not self._registered or not beat(
                self.sessions, wid=self.wid, state=self.state, running=running
            ):
                register(
                    self.sessions,
                    wid=self.wid,
                    queue=self.settings.queue,
                    concurrency=self.concurrency,
                )
                self._registered = True
                if self.state != STARTING:
                    beat(self.sessions, wid=self.wid, state=self.state)
        except Exception as exc:
            if not self._failing:
                log.warning("fleet: could not write worker %s's row: %s", self.wid, exc)
            self._failing = True
            return
        if self._failing:
            log.info("fleet: worker %s's row written again", self.wid)
        self._failing = False

    def _run(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            self._write()


_registry: Registry | None = None


def registry() -> Registry | None:
    """This main process's registry (None in a pool process or before the worker starts)."""
    return _registry


def install() -> None:
    """Connect the registry to the worker's signals (once, from workers/app.py)."""

    @worker_init.connect(weak=False)
    def _register(sender: Any = None, **_: object) -> None:
        global _registry
        concurrency = int(getattr(sender, "concurrency", None) or 1)
        _registry = Registry(get_settings(), concurrency=concurrency)
        _registry.start()
        log.info("fleet: registered as worker %s", _registry.wid)

    @worker_ready.connect(weak=False)
    def _ready(**_: object) -> None:
        if _registry is not None:
            _registry.set_state(READY)

    @worker_shutting_down.connect(weak=False)
    def _stopping(**_: object) -> None:
        # A signal handler: only note it; the heartbeat thread writes it.
        if _registry is not None:
            _registry.state = STOPPING

    @worker_shutdown.connect(weak=False)
    def _stopped(**_: object) -> None:
        if _registry is not None:
            _registry.stop()

    @task_received.connect(weak=False)
    def _received(request: Any = None, **_: object) -> None:
        if _registry is None or request is None or request.name != TRAIN_JOB:
            return
        args = list(request.args or [])
        if len(args) >= 2 and isinstance(args[1], int):
            _registry.hold(str(args[0]), args[1])

    @worker_process_init.connect(weak=False)
    def _report(**_: object) -> None:
        # A forked pool process: the parent's connections are the parent's to close.
        global _registry
        parent, _registry = _registry, None
        if parent is not None:
            parent.engine.dispose(close=False)
        settings = get_settings()
        engine = make_engine(str(settings.database_url))
        try:
            facts = process_facts()
            report_process(make_sessionmaker(engine), wid=worker_id(os.getppid()), facts=facts)
        except Exception as exc:
            log.warning("fleet: could not report this pool process's devices: %s", exc)
        finally:
            engine.dispose()


__all__ = ["Registry", "beat", "install", "process_facts", "register", "registry", "worker_id"]
