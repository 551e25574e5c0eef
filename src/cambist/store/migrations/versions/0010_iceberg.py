"""Iceberg orders: the size of each shown slice and what is left of the slice shown now;
and the reduce-only flag of orders (for margin and futures).

Revision ID: 0010_iceberg
Revises: 0009_trailing_stop
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_iceberg"
down_revision: str | Sequence[str] | None = "0009_trailing_stop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("iceberg_quantity", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("shown_remaining", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("reduce_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("reduce_only")
        batch.drop_column("shown_remaining")
        batch.drop_column("iceberg_quantity")
