"""model bundles: which epoch's weights a job kept, their metrics, and whether it has a bundle

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("saved_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("saved_metrics", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("best_metrics", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("has_bundle", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("has_bundle")
        batch_op.drop_column("best_metrics")
        batch_op.drop_column("saved_metrics")
        batch_op.drop_column("saved_epoch")
