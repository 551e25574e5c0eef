"""Time in force GTD: when the engine expires an order.

Revision ID: 0008_expire_time
Revises: 0007_queue_rank
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_expire_time"
down_revision: str | Sequence[str] | None = "0007_queue_rank"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("expire_time", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("expire_time")
