"""Migrations: reversible, and equal to the ORM models, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from support import BACKENDS, make_backend

import service.models  # noqa: F401
from service.db import Base
from service.migrate import downgrade, upgrade


@pytest.mark.parametrize("kind", BACKENDS)
def test_upgrade_matches_models_and_downgrade_reverses(kind, tmp_path):
    backend = make_backend(kind, tmp_path, migrate=False)
    try:
        url = str(backend.settings().database_url)
        upgrade(url)
        engine = create_engine(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == [], diff
            tables = set(inspect(conn).get_table_names())
        assert {"jobs", "epoch_metrics", "datasets", "alembic_version"} <= tables
        downgrade(url, "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        upgrade(url)
        engine.dispose()
    finally:
        backend.close()
