"""Shared fixtures. Nothing starts by magic: a test asks for the parts it needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Backend, bearer, make_backend, make_user


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Iterator[Backend]:
    backend = make_backend("sqlite", tmp_path)
    yield backend
    backend.close()


@pytest.fixture
def api(sqlite_backend: Backend):  # noqa: ANN201
    """An in-process API client on a fresh SQLite database and SQL broker (no worker),
    sending the token of a fresh user (not an admin) with every request."""
    from fastapi.testclient import TestClient

    from service.main import create_app

    token = make_user(sqlite_backend, "tester")
    with TestClient(create_app(sqlite_backend.settings()), headers=bearer(token)) as client:
        yield client
