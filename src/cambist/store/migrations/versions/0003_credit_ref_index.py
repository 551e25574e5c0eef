"""Partial index on ledger credit refs (credit idempotency lookups).

Revision ID: 0003_credit_ref_index
Revises: 0002_accounts
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_credit_ref_index"
down_revision: str | Sequence[str] | None = "0002_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_ledger_entries_credit_ref",
        "ledger_entries",
        ["ref"],
        postgresql_where=sa.text("kind = 'credit'"),
        sqlite_where=sa.text("kind = 'credit'"),
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_credit_ref", table_name="ledger_entries")
