"""projects, tags and notes on jobs and sweeps, and the indexes of the job search

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ORGANISED = ("jobs", "sweeps")
#: The columns the job search reads: JSONB on PostgreSQL (see service/jobs/models.py).
_SEARCHED = ("spec", "final_metrics", "saved_metrics", "best_metrics", "tags")
_GIN = {"ix_jobs_spec_gin": "spec", "ix_jobs_tags_gin": "tags"}


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_projects_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_projects_owner_id")),
    )
    for table in _ORGANISED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("project_id", sa.String(length=36), nullable=True))
            batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=True))
            batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
            batch_op.create_index(batch_op.f(f"ix_{table}_project_id"), ["project_id"])
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_project_id_projects"),
                "projects",
                ["project_id"],
                ["id"],
                ondelete="SET NULL",
            )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_jobs_owner_id_created_at"), ["owner_id", "created_at", "id"]
        )
        batch_op.create_index(
            batch_op.f("ix_jobs_owner_id_status_created_at"), ["owner_id", "status", "created_at"]
        )
    if op.get_bind().dialect.name == "postgresql":
        for column in _SEARCHED:
            op.alter_column(
                "jobs",
                column,
                type_=postgresql.JSONB(),
                existing_type=sa.JSON(),
                postgresql_using=f"{column}::jsonb",
            )
        for name, column in _GIN.items():
            op.create_index(
                name,
                "jobs",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "jsonb_path_ops"},
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _GIN:
            op.drop_index(name, table_name="jobs")
        for column in _SEARCHED:
            op.alter_column(
                "jobs",
                column,
                type_=sa.JSON(),
                existing_type=postgresql.JSONB(),
                postgresql_using=f"{column}::json",
            )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_owner_id_status_created_at"))
        batch_op.drop_index(batch_op.f("ix_jobs_owner_id_created_at"))
    for table in reversed(_ORGANISED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_project_id_projects"), type_="foreignkey"
            )
            batch_op.drop_index(batch_op.f(f"ix_{table}_project_id"))
            batch_op.drop_column("note")
            batch_op.drop_column("tags")
            batch_op.drop_column("project_id")
    op.drop_table("projects")
