"""the optimization lab: job results and the landscape's source

Jobs of the lab's kinds (``lr_range_test``, ``landscape``) and training jobs whose
learning rate was ``"auto"`` keep what they found in ``result`` (the range test's
suggestions, the landscape's grids, the chosen rate and why). A landscape job names the
job it studies in ``source_job_id``. ``kind`` gets an index: lists filter by it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("source_job_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_source_job_id"), ["source_job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_source_job_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_kind"))
        batch_op.drop_column("source_job_id")
        batch_op.drop_column("result")
