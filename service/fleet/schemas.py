"""What ``GET /v1/workers`` answers: the fleet's workers and its queues. Plain pydantic (no
SQL), so the HTTP client and the CLI parse with them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field


class WorkerState(StrEnum):
    """starting (registered, its pool not ready yet) → ready (takes jobs) → stopping (warm
    shutdown: finishing or handing back its jobs) → stopped; lost: its heartbeat is older
    than the lease (`DESCENT_LEASE_SECONDS`) and it never said it stopped — killed, or its
    machine gone. Lost is derived, never stored; the reaper has already taken back the
    jobs a lost worker ran or held."""

    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    STOPPED = "stopped"
    LOST = "lost"

    #: Alive as far as anyone knows: they count as a queue's workers.
    LIVE: ClassVar[frozenset[WorkerState]]


WorkerState.LIVE = frozenset({WorkerState.STARTING, WorkerState.READY, WorkerState.STOPPING})


class DeviceRead(BaseModel):
    name: str = Field(description="What torch calls it: `cpu`, or the CUDA device's name.")
    kind: str = Field(description="`cpu` or `cuda`.")
    memory_bytes: int | None = Field(None, description="A CUDA device's total memory.")


class WorkerJob(BaseModel):
    """A job a worker runs now (or holds the message of), as the fleet view shows it."""

    id: str
    name: str
    kind: str = Field(description="train, lr_range_test or landscape.")
    status: str = Field(
        description="Its status now (it may have ended since the worker's last heartbeat)."
    )
    epoch: int = Field(description="Epochs completed so far.")
    epochs: int = Field(description="Epochs asked for (a range test: steps; a landscape: rows).")
    owner_id: str | None = Field(None, description="The user it belongs to.")
    owner: str | None = Field(None, description="That user's name.")
    started_at: datetime | None = None


class WorkerRead(BaseModel):
    id: str = Field(description="`host:pid` of the worker's main process.")
    host: str
    pid: int
    queue: str = Field(description="The Celery queue it consumes (`DESCENT_QUEUE`).")
    concurrency: int = Field(description="Jobs it runs at once (its pool's processes).")
    state: WorkerState = Field(
        description="starting | ready | stopping | stopped | lost (heartbeat older than the "
        "lease, never stopped: its jobs were already handed back by the reaper)."
    )
    devices: list[DeviceRead] = Field(description="What it trains on.")
    torch_version: str | None = None
    cuda_version: str | None = Field(None, description="The CUDA torch was built for; null: CPU.")
    torch_threads: int | None = Field(
        None, description="torch's intra-op threads per job (`DESCENT_TORCH_THREADS`)."
    )
    version: str | None = Field(None, description="Descent's version in the worker.")
    started_at: datetime
    heartbeat_at: datetime = Field(description="Its last sign of life.")
    heartbeat_age_seconds: float = Field(description="Seconds since `heartbeat_at`.")
    stopped_at: datetime | None = None
    running: list[WorkerJob] = Field(
        description="The jobs it runs, as of its last heartbeat (none once stopped or lost)."
    )
    held: list[str] = Field(
        default_factory=list,
        description="Queued jobs whose message it has received but not started yet (ids).",
    )


class QueueRead(BaseModel):
    name: str
    depth: int | None = Field(
        description="Messages waiting in the broker for a worker; null when the broker "
        "could not be asked (`broker_error` says why)."
    )
    broker_error: str | None = Field(None, description="Why `depth` is null.")
    queued: int = Field(description="Jobs queued for it in the database.")
    oldest_queued_at: datetime | None = Field(
        None, description="When the longest-waiting queued job was submitted."
    )
    oldest_queued_seconds: float | None = Field(None, description="Seconds since then.")
    running: int = Field(description="Jobs of this queue running now.")
    workers: int = Field(description="Live workers (starting, ready, stopping) consuming it.")


class FleetRead(BaseModel):
    """The workers (newest first within live, lost, stopped) and every queue in use."""

    workers: list[WorkerRead]
    queues: list[QueueRead] = Field(
        description="The API's own queue (`DESCENT_QUEUE`), every listed worker's, and every "
        "queue a queued or running job is in."
    )
    broker_reachable: bool = Field(
        description="Whether the broker answered; when not, every queue's `depth` is null."
    )
    hidden: int = Field(
        description="Workers left out: ended (stopped or lost) more than a day ago, or not "
        "in the `state` asked for."
    )
    lease_seconds: float = Field(
        description="A worker silent for longer than this is `lost` (`DESCENT_LEASE_SECONDS`)."
    )
    now: datetime = Field(description="The server's time the ages are measured from.")
