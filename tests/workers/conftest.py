"""Fixtures of the worker-side tests that write SQL directly: a backend on both storage
pairs and sessions on it. Each module sets its own ``settings`` (leases, heartbeats …)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from support import Backend, make_backend

from service.config import Settings
from service.db import make_engine, make_sessionmaker


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = make_backend(request.param, tmp_path)
    yield b
    b.close()


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(str(settings.database_url))
    yield make_sessionmaker(engine)
    engine.dispose()
