"""typed records: a sweep's runtime state in columns of its own, tagged job results

A sweep's stored spec is what its user sent (defaults filled). What running it decides
moves out of that JSON into columns: ``max_trials`` (the trials it creates: a search's
max_trials, a comparison's configurations; a comparison's spec had it written in) and
``auto_bounds`` (the range test behind "auto" ends, and the ends it set). The upgrade
moves the values out of ``sweeps.spec``; the downgrade puts them back where the code
before it looks for them, the resolved ends written into the spec's space included.

``jobs.result`` becomes a tagged union on ``kind`` (service/spec/results.py): range tests'
and landscapes' results carry their ``kind`` already; the record of an ``"auto"`` rate
(``{"auto_lr": …}``) gets ``"kind": "auto_lr"``, and loses it again on the downgrade.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables as this revision sees them (not the ORM's models: those move on).
sweeps = sa.table(
    "sweeps",
    sa.column("id", sa.String),
    sa.column("kind", sa.String),
    sa.column("spec", sa.JSON),
    sa.column("max_trials", sa.Integer),
    sa.column("auto_bounds", sa.JSON(none_as_null=True)),
)
jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("result", sa.JSON))

AUTO_LR = "auto_lr"
#: A search's max_trials when none was stored (the code before always stored one).
DEFAULT_MAX_TRIALS = 20


def upgrade() -> None:
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_trials", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("auto_bounds", sa.JSON(), nullable=True))
    conn = op.get_bind()
    for row in conn.execute(sa.select(sweeps.c.id, sweeps.c.kind, sweeps.c.spec)).all():
        spec = dict(row.spec)
        auto = spec.pop("auto_bounds", None)
        if row.kind == "comparison":
            spec.pop("max_trials", None)
            max_trials = len(spec.get("configurations") or [])
        else:
            max_trials = int(spec.get("max_trials") or DEFAULT_MAX_TRIALS)
        conn.execute(
            sa.update(sweeps)
            .where(sweeps.c.id == row.id)
            .values(spec=spec, max_trials=max_trials, auto_bounds=auto)
        )
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.alter_column("max_trials", existing_type=sa.Integer(), nullable=False)
    for job_id, result in _results(conn):
        if AUTO_LR in result and "kind" not in result:
            _set_result(conn, job_id, {"kind": AUTO_LR, **result})


def downgrade() -> None:
    conn = op.get_bind()
    for job_id, result in _results(conn):
        if result.get("kind") == AUTO_LR:
            _set_result(conn, job_id, {k: v for k, v in result.items() if k != "kind"})
    query = sa.select(sweeps.c.id, sweeps.c.spec, sweeps.c.max_trials, sweeps.c.auto_bounds)
    for row in conn.execute(query).all():
        spec = dict(row.spec) | {"max_trials": row.max_trials}
        if row.auto_bounds is not None:
            auto = _old_record(row.auto_bounds)
            spec["auto_bounds"] = auto
            # The code before read the resolved ends from the space itself.
            space = dict(spec.get("space") or {})
            for path, ends in (auto.get("bounds") or {}).items():
                space[path] = {next(iter(space[path])): list(ends)}
            spec["space"] = space
        conn.execute(sa.update(sweeps).where(sweeps.c.id == row.id).values(spec=spec))
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_column("auto_bounds")
        batch_op.drop_column("max_trials")


def _results(conn: sa.Connection) -> list[tuple[str, dict[str, Any]]]:
    rows = conn.execute(sa.select(jobs.c.id, jobs.c.result).where(jobs.c.result.is_not(None)))
    return [(r.id, r.result) for r in rows if isinstance(r.result, dict)]


def _set_result(conn: sa.Connection, job_id: str, result: dict[str, Any]) -> None:
    conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(result=result))


def _old_record(auto: dict[str, Any]) -> dict[str, Any]:
    """``auto_bounds`` as the code before kept it: the keys of an unresolved test absent
    (it took "bounds" being there to mean the ends were set), not null."""
    return {k: v for k, v in auto.items() if v is not None}
