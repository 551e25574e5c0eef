"""Write side of the trading store: one transaction per engine batch, and the way back.

``TradingStore.write_batch`` is the engine's hot path. It uses SQLAlchemy Core executemany
with statements built once per store (the ORM unit of work would cost more than the SQL),
and the dialect's own ``INSERT .. ON CONFLICT DO UPDATE`` for rows that hold a latest state
(assets, markets, orders, balances, klines, engine_state). Append-only rows (journal, trades,
fills, ledger entries) are plain inserts, so a repeated seq or id fails the whole batch
instead of silently rewriting history.

``load_snapshot`` reads the state tables back into a ``CoreSnapshot`` so the engine can
rebuild the core and compare its ``state_hash`` with the one recorded here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.dml import Insert

from cambist.core.events import (
    AssetView,
    BalanceView,
    Changes,
    CoreSnapshot,
    MarketView,
    OrderView,
    Trade,
)
from cambist.core.types import OPEN_STATUSES, Liquidity, Side
from cambist.store.base import is_sqlite
from cambist.store.models_trading import (
    ENGINE_STATE_ID,
    KLINE_INTERVALS_MS,
    AssetRow,
    BalanceRow,
    EngineStateRow,
    FillRow,
    JournalRow,
    KlineRow,
    LedgerEntryRow,
    MarketRow,
    OrderRow,
    TradeRow,
    table_of,
)

# (seq, time, kind, payload): one journaled command as the engine hands it over.
JournalItem = tuple[int, int, str, bytes]
Params = list[dict[str, Any]]
V = TypeVar("V", bound=msgspec.Struct)

JOURNAL_PAGE_ROWS = 1000  # rows fetched per query by journal_since
_OPEN_STATUS_VALUES = frozenset(status.value for status in OPEN_STATUSES)

_assets = table_of(AssetRow)
_markets = table_of(MarketRow)
_orders = table_of(OrderRow)
_trades = table_of(TradeRow)
_fills = table_of(FillRow)
_balances = table_of(BalanceRow)
_ledger = table_of(LedgerEntryRow)
_journal = table_of(JournalRow)
_engine_state = table_of(EngineStateRow)
_klines = table_of(KlineRow)


class TradingStore:
    """The engine's persistence: ``write_batch`` after each batch, ``load_snapshot`` at start."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._statements = _BatchStatements(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def write_batch(self, journal: Sequence[JournalItem], changes: Changes) -> None:
        """Write the journal and every change of one batch in ONE transaction.

        Either all of it commits or none of it does; on failure the exception propagates and
        the engine must not acknowledge any command of the batch.
        """
        steps = self._statements.plan(journal, changes)
        with self._engine.begin() as conn:
            for statement, params in steps:
                conn.execute(statement, params)

    def load_snapshot(self) -> tuple[CoreSnapshot, str | None]:
        """The core state as of the last committed batch, and the state hash recorded then.

        An empty store gives an empty snapshot (counters 1, last_seq 0) and ``None``.
        """
        with self._engine.connect() as conn:
            # One snapshot of the database for every table (PostgreSQL runs each statement
            # in its own snapshot under READ COMMITTED). SQLite reads are only taken at start,
            # when the engine, the only writer, is not writing.
            if not is_sqlite(self._engine):
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                return _read_snapshot(conn)

    def journal_since(self, seq: int, limit: int) -> Iterator[tuple[int, int, bytes]]:
        """Journaled commands with a sequence number above ``seq``, oldest first, at most ``limit``.

        Pages through the table so no connection stays open while the caller replays.
        """
        remaining = limit
        after = seq
        while remaining > 0:
            page = _journal_page(self._engine, after, min(remaining, JOURNAL_PAGE_ROWS))
            yield from page
            if len(page) < min(remaining, JOURNAL_PAGE_ROWS):
                return
            remaining -= len(page)
            after = page[-1][0]


# -- write side -------------------------------------------------------------------------------


class _BatchStatements:
    """The batch's statements, compiled into the dialect once, and the rows each one takes."""

    def __init__(self, engine: Engine) -> None:
        self._sqlite = is_sqlite(engine)
        insert: Callable[[Table], Insert] = sqlite.insert if self._sqlite else postgresql.insert
        self._insert = insert
        self.journal = insert(_journal)
        self.trades = insert(_trades)
        self.fills = insert(_fills)
        self.ledger = insert(_ledger)
        self.assets = self._upsert(_assets, ["asset"])
        self.markets = self._upsert(_markets, ["symbol"])
        self.orders = self._upsert(_orders, ["order_id"])
        self.balances = self._upsert(_balances, ["account_id", "asset"])
        self.engine_state = self._upsert(_engine_state, ["id"])
        self.klines = self._kline_upsert()

    def _upsert(self, table: Table, keys: list[str]) -> Insert:
        """Insert, or overwrite every non-key column with the new latest state."""
        stmt: Any = self._insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        result: Insert = stmt.on_conflict_do_update(index_elements=keys, set_=updates)
        return result

    def _kline_upsert(self) -> Insert:
        """Merge a bucket aggregated from this batch into the stored bucket.

        The stored open stays (earlier trades came first), the close is the batch's, extremes
        combine and sums add. SQLite's two-argument max()/min() are its scalar GREATEST/LEAST.
        """
        stmt: Any = self._insert(_klines)
        new = stmt.excluded
        greatest, least = (func.max, func.min) if self._sqlite else (func.greatest, func.least)
        k = _klines.c
        updates = {
            "close_time": new.close_time,
            "high": greatest(k.high, new.high),
            "low": least(k.low, new.low),
            "close": new.close,
            "volume": k.volume + new.volume,
            "quote_volume": k.quote_volume + new.quote_volume,
            "trade_count": k.trade_count + new.trade_count,
        }
        result: Insert = stmt.on_conflict_do_update(
            index_elements=["symbol", "interval", "open_time"], set_=updates
        )
        return result

    def plan(self, journal: Sequence[JournalItem], changes: Changes) -> list[tuple[Insert, Params]]:
        """Pair each statement with its rows; skip empty ones (executemany needs rows).

        All rows are built before the transaction opens so it stays as short as the SQL.
        """
        steps: list[tuple[Insert, Params]] = [
            (self.journal, _journal_params(journal)),
            (self.assets, _struct_params(changes.assets)),
            (self.markets, _struct_params(changes.markets)),
            (self.orders, _order_params(changes.orders)),
            (self.trades, _struct_params(changes.trades)),
            (self.fills, _fill_params(changes.trades)),
            (self.ledger, _struct_params(changes.ledger)),
            (self.balances, _balance_params(changes.balances, changes.last_seq)),
            (self.klines, kline_params(changes.trades)),
            (self.engine_state, [_engine_state_params(changes)]),
        ]
        return [(statement, params) for statement, params in steps if params]


def _journal_params(journal: Sequence[JournalItem]) -> Params:
    return [
        {"seq": seq, "time": time_ms, "kind": kind, "payload": payload}
        for seq, time_ms, kind, payload in journal
    ]


def _struct_params(views: Sequence[msgspec.Struct]) -> Params:
    # to_builtins turns the StrEnum fields into plain str, which every driver binds as text.
    return [msgspec.to_builtins(view) for view in views]


def _order_params(orders: Sequence[OrderView]) -> Params:
    rows = _struct_params(orders)
    for row in rows:
        row["is_open"] = row["status"] in _OPEN_STATUS_VALUES
    return rows


def _balance_params(balances: Sequence[BalanceView], seq: int) -> Params:
    rows = _struct_params(balances)
    for row in rows:
        row["updated_seq"] = seq
    return rows


def _fill_params(trades: Sequence[Trade]) -> Params:
    """Two fills per trade, the maker's then the taker's view of it, in trade order."""
    rows: Params = []
    for trade in trades:
        rows.append(_fill(trade, Liquidity.MAKER))
        rows.append(_fill(trade, Liquidity.TAKER))
    return rows


def _fill(trade: Trade, liquidity: Liquidity) -> dict[str, Any]:
    if liquidity is Liquidity.MAKER:
        account_id, order_id = trade.maker_account_id, trade.maker_order_id
        fee, fee_asset = trade.maker_fee, trade.maker_fee_asset
        side = Side.SELL if trade.taker_side is Side.BUY else Side.BUY
    else:
        account_id, order_id = trade.taker_account_id, trade.taker_order_id
        fee, fee_asset = trade.taker_fee, trade.taker_fee_asset
        side = trade.taker_side
    return {
        "account_id": account_id,
        "trade_id": trade.trade_id,
        "order_id": order_id,
        "symbol": trade.symbol,
        "side": side.value,
        "price": trade.price,
        "quantity": trade.quantity,
        "quote_quantity": trade.quote_quantity,
        "fee": fee,
        "fee_asset": fee_asset,
        "liquidity": liquidity.value,
        "time": trade.time,
        "seq": trade.seq,
    }


def kline_params(trades: Sequence[Trade]) -> Params:
    """One row per (symbol, interval, bucket) touched by ``trades``, aggregated in trade order.

    Aggregating here means the upsert touches each bucket once per batch, not once per trade.
    """
    buckets: dict[tuple[str, str, int], dict[str, Any]] = {}
    for trade in trades:
        for interval, interval_ms in KLINE_INTERVALS_MS.items():
            open_time = trade.time - trade.time % interval_ms
            row = buckets.get((trade.symbol, interval, open_time))
            if row is None:
                buckets[(trade.symbol, interval, open_time)] = _new_kline(
                    trade, interval, open_time, interval_ms
                )
            else:
                _add_to_kline(row, trade)
    return list(buckets.values())


def _new_kline(trade: Trade, interval: str, open_time: int, interval_ms: int) -> dict[str, Any]:
    return {
        "symbol": trade.symbol,
        "interval": interval,
        "open_time": open_time,
        "close_time": open_time + interval_ms - 1,
        "open": trade.price,
        "high": trade.price,
        "low": trade.price,
        "close": trade.price,
        "volume": trade.quantity,
        "quote_volume": trade.quote_quantity,
        "trade_count": 1,
    }


def _add_to_kline(row: dict[str, Any], trade: Trade) -> None:
    row["high"] = max(row["high"], trade.price)
    row["low"] = min(row["low"], trade.price)
    row["close"] = trade.price
    row["volume"] += trade.quantity
    row["quote_volume"] += trade.quote_quantity
    row["trade_count"] += 1


def _engine_state_params(changes: Changes) -> dict[str, Any]:
    return {
        "id": ENGINE_STATE_ID,
        "last_seq": changes.last_seq,
        "last_time": changes.last_time,
        "state_hash": changes.state_hash,
        "next_order_id": changes.next_order_id,
        "next_trade_id": changes.next_trade_id,
        "next_posting_id": changes.next_posting_id,
        "updated_at": int(time.time() * 1000),
    }


# -- read side of the engine's own state --------------------------------------------------------


def _read_snapshot(conn: Connection) -> tuple[CoreSnapshot, str | None]:
    state = conn.execute(select(_engine_state).where(_engine_state.c.id == ENGINE_STATE_ID)).first()
    open_orders = conn.execute(
        select(*_view_columns(_orders, OrderView))
        .where(_orders.c.is_open.is_(True))
        .order_by(_orders.c.priority, _orders.c.order_id)
    )
    snapshot = CoreSnapshot(
        last_seq=state.last_seq if state else 0,
        last_time=state.last_time if state else 0,
        next_order_id=state.next_order_id if state else 1,
        next_trade_id=state.next_trade_id if state else 1,
        next_posting_id=state.next_posting_id if state else 1,
        assets=_views(conn, _assets, AssetView, _assets.c.asset),
        markets=_views(conn, _markets, MarketView, _markets.c.symbol),
        balances=_views(conn, _balances, BalanceView, _balances.c.account_id, _balances.c.asset),
        open_orders=[msgspec.convert(row._asdict(), OrderView) for row in open_orders],
    )
    return snapshot, state.state_hash if state else None


def _view_columns(table: Table, view: type[msgspec.Struct]) -> list[Any]:
    return [table.c[name] for name in view.__struct_fields__]


def _views(conn: Connection, table: Table, view: type[V], *order_by: Any) -> list[V]:
    rows = conn.execute(select(*_view_columns(table, view)).order_by(*order_by))
    return [msgspec.convert(row._asdict(), view) for row in rows]


def _journal_page(engine: Engine, after: int, limit: int) -> list[tuple[int, int, bytes]]:
    query = (
        select(_journal.c.seq, _journal.c.time, _journal.c.payload)
        .where(_journal.c.seq > after)
        .order_by(_journal.c.seq)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [(row.seq, row.time, bytes(row.payload)) for row in conn.execute(query)]
