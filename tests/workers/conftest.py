"""Fixtures of the worker-side tests that write SQL directly: sessions on the ``backend``
of tests/conftest.py (both storage pairs). Each module sets its own ``settings`` (leases,
heartbeats …)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import make_engine, make_sessionmaker


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(str(settings.database_url))
    yield make_sessionmaker(engine)
    engine.dispose()
