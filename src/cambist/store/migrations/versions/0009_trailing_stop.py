"""Trailing stops: the trailing distance (absolute or in parts per million), the activation
price and the best price since activation.

Revision ID: 0009_trailing_stop
Revises: 0008_expire_time
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_trailing_stop"
down_revision: str | Sequence[str] | None = "0008_expire_time"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("trailing_offset", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("trailing_ppm", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("activation_price", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("trail_extreme", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        for column in ("trail_extreme", "activation_price", "trailing_ppm", "trailing_offset"):
            batch.drop_column(column)
