"""Conditional orders: the stop price of stop and take-profit orders.

Revision ID: 0006_stop_price
Revises: 0005_input_position
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_stop_price"
down_revision: str | Sequence[str] | None = "0005_input_position"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("stop_price", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("stop_price")
