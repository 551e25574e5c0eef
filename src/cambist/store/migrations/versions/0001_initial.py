"""Trading tables: assets, markets, orders, trades, fills, balances, ledger, journal, klines.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-25

Every amount, price, id, sequence number and time is BIGINT on both backends (integer units,
see ``cambist.core.numbers``). Autoincrement ids are BIGSERIAL on PostgreSQL and the 64-bit
rowid alias ``INTEGER PRIMARY KEY`` on SQLite. The accounts tables come in revision 0002.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _big(name: str, *, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), autoincrement=False, nullable=nullable)


def _text(name: str, length: int | None = None, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "assets",
        _text("asset"),
        sa.Column("scale", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("asset", name=op.f("pk_assets")),
    )
    op.create_table(
        "markets",
        _text("symbol"),
        _text("base_asset"),
        _text("quote_asset"),
        _big("tick_size"),
        _big("lot_size"),
        _big("min_quantity"),
        _big("min_notional"),
        sa.Column("maker_fee_ppm", sa.Integer(), nullable=False),
        sa.Column("taker_fee_ppm", sa.Integer(), nullable=False),
        _text("status", 16),
        _text("self_trade_prevention", 16),
        _text("market_type", 16),
        sa.PrimaryKeyConstraint("symbol", name=op.f("pk_markets")),
    )
    _create_orders()
    _create_trades_and_fills()
    op.create_table(
        "balances",
        _big("account_id"),
        _text("asset"),
        _big("available"),
        _big("locked"),
        _big("updated_seq"),
        sa.PrimaryKeyConstraint("account_id", "asset", name=op.f("pk_balances")),
    )
    _create_ledger_entries()
    op.create_table(
        "journal",
        _big("seq"),
        _big("time"),
        _text("kind", 32),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_journal")),
    )
    op.create_table(
        "engine_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        _big("last_seq"),
        _big("last_time"),
        _text("state_hash", 128),
        _big("next_order_id"),
        _big("next_trade_id"),
        _big("next_posting_id"),
        _big("updated_at"),
        sa.CheckConstraint("id = 1", name=op.f("ck_engine_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engine_state")),
    )
    op.create_table(
        "klines",
        _text("symbol"),
        _text("interval", 8),
        _big("open_time"),
        _big("close_time"),
        _big("open"),
        _big("high"),
        _big("low"),
        _big("close"),
        _big("volume"),
        _big("quote_volume"),
        _big("trade_count"),
        sa.PrimaryKeyConstraint("symbol", "interval", "open_time", name=op.f("pk_klines")),
    )


def _create_orders() -> None:
    op.create_table(
        "orders",
        _big("order_id"),
        _big("account_id"),
        _text("symbol"),
        _text("side", 8),
        _text("order_type", 24),
        _text("time_in_force", 8),
        sa.Column("post_only", sa.Boolean(), nullable=False),
        _text("self_trade_prevention", 16),
        _text("client_order_id", nullable=True),
        _big("price", nullable=True),
        _big("quantity", nullable=True),
        _big("quote_quantity", nullable=True),
        _text("status", 24),
        _big("filled_quantity"),
        _big("quote_filled"),
        _big("fee"),
        _text("fee_asset"),
        _text("hold_asset"),
        _big("hold_remaining"),
        _big("priority"),
        _big("created_at"),
        _big("updated_at"),
        _big("created_seq"),
        _big("updated_seq"),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_orders")),
    )
    op.create_index(
        "uq_orders_account_client_order_id", "orders", ["account_id", "client_order_id"], unique=True
    )
    op.create_index("ix_orders_account_order", "orders", ["account_id", "order_id"])
    op.create_index("ix_orders_account_symbol_order", "orders", ["account_id", "symbol", "order_id"])
    # Partial: open orders only (see OrderRow).
    for name, columns in (
        ("ix_orders_open_account_order", ["account_id", "order_id"]),
        ("ix_orders_open_priority", ["priority", "order_id"]),
    ):
        op.create_index(
            name,
            "orders",
            columns,
            postgresql_where=sa.text("is_open"),
            sqlite_where=sa.text("is_open = 1"),
        )


def _create_trades_and_fills() -> None:
    op.create_table(
        "trades",
        _big("trade_id"),
        _big("seq"),
        _big("time"),
        _text("symbol"),
        _big("price"),
        _big("quantity"),
        _big("quote_quantity"),
        _text("taker_side", 8),
        _big("maker_order_id"),
        _big("taker_order_id"),
        _big("maker_account_id"),
        _big("taker_account_id"),
        _big("maker_fee"),
        _text("maker_fee_asset"),
        _big("taker_fee"),
        _text("taker_fee_asset"),
        sa.PrimaryKeyConstraint("trade_id", name=op.f("pk_trades")),
    )
    op.create_index("ix_trades_symbol_trade", "trades", ["symbol", "trade_id"])
    op.create_table(
        "fills",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        _big("account_id"),
        _big("trade_id"),
        _big("order_id"),
        _text("symbol"),
        _text("side", 8),
        _big("price"),
        _big("quantity"),
        _big("quote_quantity"),
        _big("fee"),
        _text("fee_asset"),
        _text("liquidity", 8),
        _big("time"),
        _big("seq"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
    )
    op.create_index("ix_fills_account_id", "fills", ["account_id", "id"])
    op.create_index("ix_fills_account_symbol_id", "fills", ["account_id", "symbol", "id"])
    op.create_index("ix_fills_order_id", "fills", ["order_id", "id"])


def _create_ledger_entries() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        _big("posting_id"),
        _big("seq"),
        _big("time"),
        _big("account_id"),
        _text("asset"),
        _text("bucket", 16),
        _big("delta"),
        _text("kind", 16),
        _text("ref"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index("ix_ledger_entries_account_asset_id", "ledger_entries", ["account_id", "asset", "id"])
    op.create_index("ix_ledger_entries_posting_id", "ledger_entries", ["posting_id"])


def downgrade() -> None:
    for table in (
        "klines",
        "engine_state",
        "journal",
        "ledger_entries",
        "balances",
        "fills",
        "trades",
        "orders",
        "markets",
        "assets",
    ):
        op.drop_table(table)  # their indexes go with them
