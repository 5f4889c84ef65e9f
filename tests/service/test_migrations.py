"""Migrations: reversible, and equal to the ORM models, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from job_results import auto_lr_record, range_test_record
from sqlalchemy import create_engine, inspect
from support import BACKENDS, make_backend

import service.models  # noqa: F401
from service.db import Base, make_sessionmaker
from service.jobs.models import Job
from service.migrate import downgrade, upgrade
from service.sweeps.driver import parse_spec
from service.sweeps.models import Sweep
from service.sweeps.schemas import AutoBounds
from service.sweeps.spec import ComparisonSpec, SweepSpec


def _made_on(dialect: str) -> Any:
    """Alembic's ``include_object``: the models' objects that exist on ``dialect`` (an
    index made with ``ddl_if(dialect="postgresql")`` — the job search's GIN indexes —
    exists on PostgreSQL only, which autogenerate does not know by itself)."""

    def include(obj: Any, name: Any, type_: str, reflected: bool, compare_to: Any) -> bool:
        condition = getattr(obj, "_ddl_if", None)
        return condition is None or condition.dialect in (None, dialect)

    return include


@pytest.mark.parametrize("kind", BACKENDS)
def test_upgrade_matches_models_and_downgrade_reverses(kind, tmp_path):
    backend = make_backend(kind, tmp_path, migrate=False)
    try:
        url = str(backend.settings().database_url)
        upgrade(url)
        engine = create_engine(url)
        with engine.connect() as conn:
            opts = {"include_object": _made_on(conn.dialect.name)}
            diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
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


# -- 0005: a sweep's runtime state out of its spec, tagged job results ---------------

_USERS = sa.table(
    "users",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("role", sa.String),
    sa.column("disabled", sa.Boolean),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_COMMON = ("id", "owner_id", "name", "kind", "status", "task", "created_at")
_JOBS = sa.table(
    "jobs",
    *(sa.column(c) for c in _COMMON),
    *(sa.column(c, sa.Integer) for c in ("n_parameters", "epochs_completed")),
    *(sa.column(c, sa.Boolean) for c in ("cancel_requested", "has_model")),
    sa.column("spec", sa.JSON),
    sa.column("result", sa.JSON),
)
_SWEEPS = sa.table(
    "sweeps",
    *(sa.column(c) for c in _COMMON),
    *(sa.column(c, sa.Integer) for c in ("trials_created", "event_seq")),
    sa.column("cancel_requested", sa.Boolean),
    sa.column("spec", sa.JSON),
)
_OWNER, _TEST_JOB = "0" * 8 + "-0000-0000-0000-" + "0" * 12, "1" * 8 + "-1111-1111-1111-" + "1" * 12
_BASE = {"dataset": {"name": "iris"}, "training": {"epochs": 3}}
_WHY = "the range test's smoothed loss is lowest at step 40 (lr 0.1)"


#: What the code before 0005 wrote: sweep id → (kind, spec); job id → result.
_OLD_SWEEPS: dict[str, tuple[str, dict[str, Any]]] = {
    "resolved": (
        "sweep",
        {
            "base": _BASE,
            "space": {"optimizer.lr": {"loguniform": [0.001, 0.1]}},
            "max_trials": 6,
            "auto_bounds": {
                "paths": ["optimizer.lr"],
                "job_id": _TEST_JOB,
                "bounds": {"optimizer.lr": [0.001, 0.1]},
                "lr_at_minimum": 0.1,
                "why": _WHY,
            },
        },
    ),
    "waiting": (
        "sweep",
        {
            "base": _BASE,
            "space": {"optimizer.lr": {"loguniform": ["auto", 0.5]}},
            "max_trials": 20,
            "auto_bounds": {"paths": ["optimizer.lr"], "job_id": _TEST_JOB},
        },
    ),
    "plain": (
        "sweep",
        {"base": _BASE, "space": {"model.dropout": {"grid": [0.0, 0.5]}}, "max_trials": 2},
    ),
    "compare": (
        "comparison",
        {
            "base": _BASE,
            "configurations": [
                {"label": "base", "set": {}},
                {"label": "fast", "set": {"optimizer.lr": 0.01}},
                {"label": "slow", "set": {"optimizer.lr": 0.0001}},
            ],
            "repeats": 2,
            "max_trials": 3,
        },
    ),
}
_OLD_RESULTS: dict[str, dict[str, Any] | None] = {
    "auto": {"auto_lr": auto_lr_record().auto_lr.model_dump(mode="json")},
    "test": range_test_record().model_dump(mode="json"),
    "none": None,
}


def _insert_old_rows(conn: sa.Connection) -> None:
    now = datetime.now(UTC)
    conn.execute(
        sa.insert(_USERS).values(id=_OWNER, name="o", role="admin", disabled=False, created_at=now)
    )
    common = {
        "owner_id": _OWNER,
        "status": "succeeded",
        "task": "classification",
        "created_at": now,
    }
    for sweep_id, (kind, spec) in _OLD_SWEEPS.items():
        conn.execute(
            sa.insert(_SWEEPS).values(
                id=sweep_id,
                name=sweep_id,
                kind=kind,
                spec=spec,
                trials_created=0,
                event_seq=0,
                cancel_requested=False,
                **common,
            )
        )
    for job_id, result in _OLD_RESULTS.items():
        conn.execute(
            sa.insert(_JOBS).values(
                id=job_id,
                name=job_id,
                kind="lr_range_test" if job_id == "test" else "train",
                spec=_BASE,
                result=result,
                n_parameters=1,
                epochs_completed=0,
                cancel_requested=False,
                has_model=False,
                **common,
            )
        )


def _raw(conn: sa.Connection, table: sa.TableClause, column: str) -> dict[str, Any]:
    return dict(conn.execute(sa.select(table.c.id, table.c[column])).all())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_rows(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    """(url, engine) of a database at 0004 holding rows as the code before 0005 wrote."""
    backend = make_backend(request.param, tmp_path, migrate=False)
    try:
        url = str(backend.settings().database_url)
        upgrade(url, "0004")
        engine = create_engine(url)
        with engine.begin() as conn:
            _insert_old_rows(conn)
        yield url, engine
        engine.dispose()
    finally:
        backend.close()


def test_0005_moves_sweep_state_to_columns_tags_results_and_back(old_rows):
    url, engine = old_rows
    upgrade(url)
    with engine.connect() as conn:
        specs = _raw(conn, _SWEEPS, "spec")
        state = {
            r.id: (r.max_trials, r.auto_bounds)
            for r in conn.execute(sa.text("SELECT id, max_trials, auto_bounds FROM sweeps"))
        }
    # The specs lose what running them decided, and nothing else.
    for sweep_id, (sweep_kind, old) in _OLD_SWEEPS.items():
        drop = {"auto_bounds"} | ({"max_trials"} if sweep_kind == "comparison" else set())
        assert specs[sweep_id] == {k: v for k, v in old.items() if k not in drop}
    with make_sessionmaker(engine)() as s:
        sweeps = {sweep.id: sweep for sweep in s.scalars(sa.select(Sweep))}
        jobs = {job.id: job for job in s.scalars(sa.select(Job))}
    assert {k: s.max_trials for k, s in sweeps.items()} == {
        "resolved": 6,
        "waiting": 20,
        "plain": 2,
        "compare": 3,
    }
    assert sweeps["resolved"].auto_bounds == AutoBounds(
        job_id=_TEST_JOB,
        paths=["optimizer.lr"],
        bounds={"optimizer.lr": [0.001, 0.1]},
        lr_at_minimum=0.1,
        why=_WHY,
    )
    assert sweeps["waiting"].auto_bounds == AutoBounds(job_id=_TEST_JOB, paths=["optimizer.lr"])
    assert sweeps["plain"].auto_bounds is None and sweeps["compare"].auto_bounds is None
    # The stored specs parse as they are; the trials sample within the resolved ends.
    parsed = parse_spec(sweeps["resolved"])
    assert isinstance(parsed, SweepSpec) and parsed.space["optimizer.lr"].loguniform == (
        0.001,
        0.1,
    )
    assert parse_spec(sweeps["waiting"]).space["optimizer.lr"].auto  # type: ignore[union-attr]
    assert isinstance(parse_spec(sweeps["compare"]), ComparisonSpec)
    # An "auto" rate's record gets its kind; the others had theirs.
    assert jobs["auto"].result == auto_lr_record()
    assert jobs["test"].result == range_test_record() and jobs["none"].result is None
    assert state["plain"] == (2, None)  # SQL NULL, not JSON null

    downgrade(url, "0004")
    with engine.connect() as conn:
        assert _raw(conn, _SWEEPS, "spec") == {k: spec for k, (_, spec) in _OLD_SWEEPS.items()}
        assert _raw(conn, _JOBS, "result") == _OLD_RESULTS


def test_0005_downgrade_writes_resolved_ends_where_the_code_before_read_them(old_rows):
    """A sweep created after 0005 keeps "auto" in its spec; the code before 0005 read the
    resolved ends from the spec's space, and an unresolved test from the missing "bounds"."""
    url, engine = old_rows
    upgrade(url)
    auto_space = {"optimizer.lr": {"loguniform": ["auto", "auto"]}}
    with make_sessionmaker(engine)() as s, s.begin():
        for sweep_id, bounds in (("resolved", [0.001, 0.1]), ("waiting", None)):
            sweep = s.get(Sweep, sweep_id)
            assert sweep is not None
            sweep.spec = {**sweep.spec, "space": auto_space}
            sweep.auto_bounds = AutoBounds(
                job_id=_TEST_JOB,
                paths=["optimizer.lr"],
                bounds=None if bounds is None else {"optimizer.lr": bounds},
                lr_at_minimum=None if bounds is None else 0.1,
                why=None if bounds is None else _WHY,
            )
    downgrade(url, "0004")
    with engine.connect() as conn:
        specs = _raw(conn, _SWEEPS, "spec")
    assert specs["resolved"]["space"] == {"optimizer.lr": {"loguniform": [0.001, 0.1]}}
    assert specs["resolved"]["auto_bounds"]["bounds"] == {"optimizer.lr": [0.001, 0.1]}
    assert specs["waiting"]["space"] == auto_space
    assert specs["waiting"]["auto_bounds"] == {"job_id": _TEST_JOB, "paths": ["optimizer.lr"]}
    assert specs["waiting"]["max_trials"] == 20 and specs["compare"]["max_trials"] == 3


# -- 0008: projects, tags and notes; the searched columns JSONB on PostgreSQL ------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_0008_keeps_jobs_as_they_were_both_ways(kind: str, tmp_path: Path) -> None:
    backend = make_backend(kind, tmp_path, migrate=False)
    try:
        url = str(backend.settings().database_url)
        upgrade(url, "0007")
        engine = create_engine(url)
        spec = {"optimizer": {"name": "sgd", "lr": "auto"}, "training": {"batch_size": "full"}}
        metrics = {"val_accuracy": 0.97, "val_loss": None}
        jobs = sa.table(
            "jobs",
            *(sa.column(c) for c in _COMMON),
            *(sa.column(c, sa.Integer) for c in ("n_parameters", "epochs_completed")),
            *(sa.column(c, sa.Boolean) for c in ("cancel_requested", "has_model")),
            *(sa.column(c, sa.JSON) for c in ("spec", "final_metrics", "saved_metrics")),
        )
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(_USERS).values(
                    id=_OWNER, name="o", role="user", disabled=False, created_at=now
                )
            )
            conn.execute(
                sa.insert(jobs).values(
                    id="j",
                    owner_id=_OWNER,
                    name="j",
                    kind="train",
                    status="succeeded",
                    task="classification",
                    created_at=now,
                    n_parameters=1,
                    epochs_completed=3,
                    cancel_requested=False,
                    has_model=True,
                    spec=spec,
                    final_metrics={"val_accuracy": 0.97},
                    saved_metrics=metrics,
                )  # fmt: skip
            )
        upgrade(url)
        with make_sessionmaker(engine)() as s:
            job = s.get(Job, "j")
            assert job is not None
            assert (job.spec, job.saved_metrics) == (spec, metrics)
            assert (job.tags, job.note, job.project_id, job.project_name) == (
                None,
                None,
                None,
                None,
            )
            if kind == "postgres":
                types = dict(
                    s.execute(
                        sa.text(
                            "SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = 'jobs' AND column_name IN "
                            "('spec', 'saved_metrics', 'tags', 'intermediate')"
                        )
                    ).all()
                )
                assert types == {
                    "spec": "jsonb",
                    "saved_metrics": "jsonb",
                    "tags": "jsonb",
                    "intermediate": "json",
                }
        downgrade(url, "0007")
        with engine.connect() as conn:
            assert _raw(conn, jobs, "spec") == {"j": spec}
            assert _raw(conn, jobs, "saved_metrics") == {"j": metrics}
            assert "projects" not in inspect(conn).get_table_names()
        engine.dispose()
    finally:
        backend.close()
