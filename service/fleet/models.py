"""The ``workers`` table: one row per worker main process, written by the worker itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow


class Worker(Base):
    """A worker main process (Celery's, with its pool). ``id`` is ``host:pid``; a row stays
    after its worker stopped or was lost, so the fleet page can say so."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    #: The Celery queue it consumes.
    queue: Mapped[str] = mapped_column(String(200))
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    #: ``starting`` (registered, pool not ready), ``ready``, ``stopping``, ``stopped``; a
    #: worker whose heartbeat is older than the lease is shown as ``lost`` (not stored).
    state: Mapped[str] = mapped_column(String(16), default="starting")
    #: What it trains on: [{"name", "kind": "cpu"|"cuda", "memory_bytes"?}, ...].
    devices: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    torch_version: Mapped[str | None] = mapped_column(String(64))
    cuda_version: Mapped[str | None] = mapped_column(String(64))
    torch_threads: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[str | None] = mapped_column(String(64))
    #: The jobs it runs now (ids), as of its last heartbeat.
    running: Mapped[list[str] | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_workers_state_heartbeat_at", "state", "heartbeat_at"),)
