"""Engine input position: the last Redis stream entry whose command was committed.

Revision ID: 0005_input_position
Revises: 0004_export_cursor
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_input_position"
down_revision: str | Sequence[str] | None = "0004_export_cursor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("engine_state") as batch:
        batch.add_column(sa.Column("input_position", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("engine_state") as batch:
        batch.drop_column("input_position")
