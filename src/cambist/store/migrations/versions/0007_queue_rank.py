"""Queue rank: the order in which one command queued several orders at the same priority
(an amended order, conditional orders it triggered), so a restored book queues them exactly.

Revision ID: 0007_queue_rank
Revises: 0006_stop_price
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_queue_rank"
down_revision: str | Sequence[str] | None = "0006_stop_price"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("queue_rank", sa.Integer(), nullable=False, server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("queue_rank")
