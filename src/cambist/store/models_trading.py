"""Tables the engine writes after every batch: the journal and the trading state.

Each row mirrors a core view (``cambist.core.events``) field for field so the write side can
turn a view into a row without translation and the read side can turn it back. Amounts,
prices, ids, sequence numbers and times are BigInteger: integer units, exact on SQLite and
PostgreSQL alike (see ``cambist.core.numbers``). Enumerations are stored as their string
values, the same strings the API uses.

Text columns that carry identifiers chosen elsewhere (symbols, assets, client order ids,
ledger refs) have no length limit on purpose: a limit the core does not also enforce would
turn a valid command into a failed batch, which stops the single writer.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cambist.store.base import Base

# Autoincrement ids: SQLite only auto-assigns an ``INTEGER PRIMARY KEY`` (the rowid alias),
# which is itself 64-bit; PostgreSQL gets BIGSERIAL.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

# Every kline interval the store keeps, in milliseconds. The write side fills all of them.
KLINE_INTERVALS_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 5 * 60_000,
    "15m": 15 * 60_000,
    "1h": 3_600_000,
    "4h": 4 * 3_600_000,
    "1d": 86_400_000,
}

ENGINE_STATE_ID = 1  # engine_state holds exactly one row


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class, typed as ``Table`` for Core statements."""
    table = model.__table__
    if not isinstance(table, Table):  # only a class mapped to a join or select lands here
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


class AssetRow(Base):
    __tablename__ = "assets"

    asset: Mapped[str] = mapped_column(String, primary_key=True)
    scale: Mapped[int] = mapped_column(Integer)


class MarketRow(Base):
    __tablename__ = "markets"

    symbol: Mapped[str] = mapped_column(String, primary_key=True)
    base_asset: Mapped[str] = mapped_column(String)
    quote_asset: Mapped[str] = mapped_column(String)
    tick_size: Mapped[int] = mapped_column(BigInteger)
    lot_size: Mapped[int] = mapped_column(BigInteger)
    min_quantity: Mapped[int] = mapped_column(BigInteger)
    min_notional: Mapped[int] = mapped_column(BigInteger)
    maker_fee_ppm: Mapped[int] = mapped_column(Integer)
    taker_fee_ppm: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    self_trade_prevention: Mapped[str] = mapped_column(String(16))
    market_type: Mapped[str] = mapped_column(String(16))


class OrderRow(Base):
    """Latest state of every order, open or final.

    ``is_open`` is derived from ``status`` (``OPEN_STATUSES``). The indexes on open orders are
    partial (``WHERE is_open``): open orders are few next to the history, so those indexes
    stay small, and an order leaves them when it closes.
    """

    __tablename__ = "orders"
    __table_args__ = (
        Index("uq_orders_account_client_order_id", "account_id", "client_order_id", unique=True),
        # list_orders 'all' and 'closed' (few open rows to skip), with and without a symbol.
        Index("ix_orders_account_order", "account_id", "order_id"),
        Index("ix_orders_account_symbol_order", "account_id", "symbol", "order_id"),
        # list_orders 'open': at most an account's open orders, any symbol filter is cheap.
        Index(
            "ix_orders_open_account_order",
            "account_id",
            "order_id",
            postgresql_where=text("is_open"),
            sqlite_where=text("is_open = 1"),  # the form SQLAlchemy renders, so SQLite matches it
        ),
        # load_snapshot reads every open order in queue order.
        Index(
            "ix_orders_open_priority",
            "priority",
            "order_id",
            postgresql_where=text("is_open"),
            sqlite_where=text("is_open = 1"),  # the form SQLAlchemy renders, so SQLite matches it
        ),
    )

    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String)
    side: Mapped[str] = mapped_column(String(8))
    order_type: Mapped[str] = mapped_column(String(24))
    time_in_force: Mapped[str] = mapped_column(String(8))
    post_only: Mapped[bool] = mapped_column(Boolean)
    self_trade_prevention: Mapped[str] = mapped_column(String(16))
    client_order_id: Mapped[str | None] = mapped_column(String, nullable=True)
    price: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quantity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quote_quantity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(24))
    filled_quantity: Mapped[int] = mapped_column(BigInteger)
    quote_filled: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger)
    fee_asset: Mapped[str] = mapped_column(String)
    hold_asset: Mapped[str] = mapped_column(String)
    hold_remaining: Mapped[int] = mapped_column(BigInteger)
    priority: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    created_seq: Mapped[int] = mapped_column(BigInteger)
    updated_seq: Mapped[int] = mapped_column(BigInteger)
    is_open: Mapped[bool] = mapped_column(Boolean)
    stop_price: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # migration 0006
    # Rank among the orders one command queued at the same priority (migration 0007).
    queue_rank: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    expire_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # GTD, migration 0008
    # Trailing stops (migration 0009): the distance, the activation and the best price so far.
    trailing_offset: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    trailing_ppm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    activation_price: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    trail_extreme: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Icebergs (migration 0010): the slice size and what is left of the slice shown now.
    iceberg_quantity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    shown_remaining: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reduce_only: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))  # migration 0010
    linked_order_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # OCO, migration 0011


class TradeRow(Base):
    __tablename__ = "trades"
    __table_args__ = (
        Index("ix_trades_symbol_trade", "symbol", "trade_id"),
        Index("ix_trades_seq", "seq"),  # the event exporter's replay (cambist.bus)
    )

    trade_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String)
    price: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(BigInteger)
    quote_quantity: Mapped[int] = mapped_column(BigInteger)
    taker_side: Mapped[str] = mapped_column(String(8))
    maker_order_id: Mapped[int] = mapped_column(BigInteger)
    taker_order_id: Mapped[int] = mapped_column(BigInteger)
    maker_account_id: Mapped[int] = mapped_column(BigInteger)
    taker_account_id: Mapped[int] = mapped_column(BigInteger)
    maker_fee: Mapped[int] = mapped_column(BigInteger)
    maker_fee_asset: Mapped[str] = mapped_column(String)
    taker_fee: Mapped[int] = mapped_column(BigInteger)
    taker_fee_asset: Mapped[str] = mapped_column(String)


class FillRow(Base):
    """One side of a trade as its account sees it; every trade has a maker and a taker fill."""

    __tablename__ = "fills"
    __table_args__ = (
        Index("ix_fills_account_id", "account_id", "id"),
        Index("ix_fills_account_symbol_id", "account_id", "symbol", "id"),
        Index("ix_fills_order_id", "order_id", "id"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(BigInteger)
    trade_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String)
    side: Mapped[str] = mapped_column(String(8))
    price: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(BigInteger)
    quote_quantity: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger)
    fee_asset: Mapped[str] = mapped_column(String)
    liquidity: Mapped[str] = mapped_column(String(8))
    time: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)


class BalanceRow(Base):
    __tablename__ = "balances"

    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    asset: Mapped[str] = mapped_column(String, primary_key=True)
    available: Mapped[int] = mapped_column(BigInteger)
    locked: Mapped[int] = mapped_column(BigInteger)
    updated_seq: Mapped[int] = mapped_column(BigInteger)


class LedgerEntryRow(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_account_asset_id", "account_id", "asset", "id"),
        Index("ix_ledger_entries_posting_id", "posting_id"),
        # Credit ids are looked up at start (idempotency) and per repeated credit; partial, so
        # the many trade legs cost nothing.
        Index(
            "ix_ledger_entries_credit_ref",
            "ref",
            postgresql_where=text("kind = 'credit'"),
            sqlite_where=text("kind = 'credit'"),
        ),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    posting_id: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[int] = mapped_column(BigInteger)
    asset: Mapped[str] = mapped_column(String)
    bucket: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String)


class JournalRow(Base):
    """Every applied command as MessagePack (``encode_command``), in sequence order."""

    __tablename__ = "journal"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class EngineStateRow(Base):
    """Counters and state hash as of the last committed batch (a single row, id 1)."""

    __tablename__ = "engine_state"
    __table_args__ = (CheckConstraint(f"id = {ENGINE_STATE_ID}", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_time: Mapped[int] = mapped_column(BigInteger)
    state_hash: Mapped[str] = mapped_column(String(128))
    next_order_id: Mapped[int] = mapped_column(BigInteger)
    next_trade_id: Mapped[int] = mapped_column(BigInteger)
    next_posting_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)  # wall clock of the write, ms
    # Where the engine is in its outside command input (a Redis stream entry id), committed with
    # the batch so a restarted engine resumes right after it (migration 0005).
    input_position: Mapped[str | None] = mapped_column(String(64), nullable=True)


class KlineRow(Base):
    __tablename__ = "klines"

    symbol: Mapped[str] = mapped_column(String, primary_key=True)
    interval: Mapped[str] = mapped_column(String(8), primary_key=True)
    open_time: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    close_time: Mapped[int] = mapped_column(BigInteger)
    open: Mapped[int] = mapped_column(BigInteger)
    high: Mapped[int] = mapped_column(BigInteger)
    low: Mapped[int] = mapped_column(BigInteger)
    close: Mapped[int] = mapped_column(BigInteger)
    volume: Mapped[int] = mapped_column(BigInteger)
    quote_volume: Mapped[int] = mapped_column(BigInteger)
    trade_count: Mapped[int] = mapped_column(BigInteger)


class ExportCursorRow(Base):
    """The last engine sequence number whose events an exporter (``name``) got confirmed."""

    __tablename__ = "export_cursor"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
