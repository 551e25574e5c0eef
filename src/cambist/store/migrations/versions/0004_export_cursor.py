"""Export cursor: the last engine sequence number whose events were confirmed by the broker.

Revision ID: 0004_export_cursor
Revises: 0003_credit_ref_index
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_export_cursor"
down_revision: str | Sequence[str] | None = "0003_credit_ref_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "export_cursor",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
    )
    # The exporter's replay reads trades by sequence number after a restart or a gap.
    op.create_index("ix_trades_seq", "trades", ["seq"])


def downgrade() -> None:
    op.drop_index("ix_trades_seq", table_name="trades")
    op.drop_table("export_cursor")
