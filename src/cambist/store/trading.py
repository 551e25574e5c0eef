"""Write side of the trading store: one transaction per engine batch, and the way back.

``TradingStore.write_batch`` is the engine's hot path: one transaction per batch, rows built
before it opens, statements built once per store, no ORM unit of work. Rows holding a latest
state (assets, markets, orders, balances, klines, engine_state) are upserted with the dialect's
``INSERT .. ON CONFLICT DO UPDATE``; append-only rows (journal, trades, fills, ledger entries)
are plain inserts, so a repeated seq or id fails the whole batch instead of rewriting history.
SQLite writes each table with one Core executemany; PostgreSQL, where per-row executemany is
CPU-bound in the driver, COPYs the append-only rows and upserts each state table with one
``INSERT .. SELECT FROM unnest(<column arrays>)`` (same SQL semantics, checked by tests).

``load_snapshot`` reads the state tables back into a ``CoreSnapshot`` so the engine can
rebuild the core and compare its ``state_hash`` with the one recorded here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, TypeVar

import msgspec
import psycopg
from sqlalchemy import Select, Table, bindparam, cast, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
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
_WRITTEN_TABLES = (
    _journal,
    _assets,
    _markets,
    _orders,
    _trades,
    _fills,
    _ledger,
    _balances,
    _klines,
    _engine_state,
)


class TradingStore:
    """The engine's persistence: ``write_batch`` after each batch, ``load_snapshot`` at start."""

    def __init__(self, engine: Engine, *, postgres_fast_path: bool = True) -> None:
        """``postgres_fast_path=False`` writes PostgreSQL through the portable executemany path
        (kept for comparison tests and benchmarks); SQLite always uses that path."""
        self._engine = engine
        self._writer: _ExecutemanyWriter | _PostgresWriter
        if postgres_fast_path and not is_sqlite(engine):
            self._writer = _PostgresWriter(engine)
        else:
            self._writer = _ExecutemanyWriter(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def write_batch(
        self, journal: Sequence[JournalItem], changes: Changes, input_position: str | None = None
    ) -> None:
        """Write the journal and every change of one batch in ONE transaction.

        Either all of it commits or none of it does. On failure a SQLAlchemy ``DBAPIError``
        (``IntegrityError`` for a broken constraint) propagates, and the engine must not
        acknowledge any command of the batch.
        """
        rows = batch_rows(journal, changes, input_position)
        with self._engine.begin() as conn:
            self._writer.write(conn, rows)

    def load_snapshot(self, *, with_balances: bool = True) -> tuple[CoreSnapshot, str | None]:
        """The core state as of the last committed batch, and the state hash recorded then.

        An empty store gives an empty snapshot (counters 1, last_seq 0) and ``None``.
        ``with_balances=False`` leaves balances out, for readers that only need the books
        (a gateway rebuilding its order-book view): the hash then does not match.
        """
        with self._engine.connect() as conn:
            # One snapshot of the database for every table (PostgreSQL runs each statement
            # in its own snapshot under READ COMMITTED). SQLite reads are only taken at start,
            # when the engine, the only writer, is not writing.
            if not is_sqlite(self._engine):
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                return _read_snapshot(conn, with_balances=with_balances)

    def load_input_position(self) -> str | None:
        """The input position committed with the last batch (``Engine.submit``), if any."""
        with self._engine.connect() as conn:
            return conn.execute(
                select(_engine_state.c.input_position).where(_engine_state.c.id == ENGINE_STATE_ID)
            ).scalar()

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


# Tables holding a latest state, with their conflict keys; every other table is append-only,
# so a repeated seq or id fails the batch instead of silently rewriting history.
_UPSERT_KEYS: dict[str, list[str]] = {
    "assets": ["asset"],
    "markets": ["symbol"],
    "orders": ["order_id"],
    "balances": ["account_id", "asset"],
    "klines": ["symbol", "interval", "open_time"],
    "engine_state": ["id"],
}


def batch_rows(
    journal: Sequence[JournalItem], changes: Changes, input_position: str | None = None
) -> list[tuple[Table, Params]]:
    """Every row of a batch, grouped by table in write order; tables without rows are left out.

    All rows are built before the transaction opens so it lasts no longer than the SQL.
    """
    steps: list[tuple[Table, Params]] = [
        (_journal, _journal_params(journal)),
        (_assets, _latest(_struct_params(changes.assets), "asset")),
        (_markets, _latest(_struct_params(changes.markets), "symbol")),
        (_orders, _latest(_order_params(changes.orders), "order_id")),
        (_trades, _struct_params(changes.trades)),
        (_fills, _fill_params(changes.trades)),
        (_ledger, _struct_params(changes.ledger)),
        (_balances, _latest(_balance_params(changes.balances, changes.last_seq), "account_id", "asset")),
        (_klines, kline_params(changes.trades)),
        (_engine_state, [_engine_state_params(changes, input_position)]),
    ]
    return [(table, params) for table, params in steps if params]


def _latest(params: Params, *keys: str) -> Params:
    """The last row per key. The core sends one state per key, but a repeat would make one
    PostgreSQL upsert touch a row twice, which it refuses; the last state is the one meant."""
    by_key = {tuple(row[key] for key in keys): row for row in params}
    return params if len(by_key) == len(params) else list(by_key.values())


def _on_conflict(stmt: Any, table: Table, *, sqlite_functions: bool) -> Insert:
    """Turn a dialect INSERT into an upsert: a kline merges, any other row is overwritten."""
    excluded = stmt.excluded
    keys = _UPSERT_KEYS[table.name]
    if table is _klines:
        updates = _kline_merge(excluded, sqlite_functions=sqlite_functions)
    else:
        updates = {c.name: excluded[c.name] for c in table.columns if c.name not in keys}
    result: Insert = stmt.on_conflict_do_update(index_elements=keys, set_=updates)
    return result


def _kline_merge(new: Any, *, sqlite_functions: bool) -> dict[str, Any]:
    """Merge a bucket aggregated from this batch into the stored bucket.

    The stored open stays (earlier trades came first), the close is the batch's, extremes
    combine and sums add. SQLite's two-argument max()/min() are its scalar GREATEST/LEAST.
    """
    greatest, least = (func.max, func.min) if sqlite_functions else (func.greatest, func.least)
    k = _klines.c
    return {
        "close_time": new.close_time,
        "high": greatest(k.high, new.high),
        "low": least(k.low, new.low),
        "close": new.close,
        "volume": k.volume + new.volume,
        "quote_volume": k.quote_volume + new.quote_volume,
        "trade_count": k.trade_count + new.trade_count,
    }


class _ExecutemanyWriter:
    """Portable path (SQLite, or PostgreSQL on request): one Core executemany per table."""

    def __init__(self, engine: Engine) -> None:
        sqlite_dialect = is_sqlite(engine)
        insert: Callable[[Table], Any] = sqlite.insert if sqlite_dialect else postgresql.insert
        self._statements: dict[str, Insert] = {}
        for table in _WRITTEN_TABLES:
            stmt = insert(table)
            if table.name in _UPSERT_KEYS:
                stmt = _on_conflict(stmt, table, sqlite_functions=sqlite_dialect)
            self._statements[table.name] = stmt

    def write(self, conn: Connection, rows: list[tuple[Table, Params]]) -> None:
        for table, params in rows:
            conn.execute(self._statements[table.name], params)


class _PostgresWriter:
    """PostgreSQL path: COPY for append-only tables, one upsert over unnest() per state table.

    psycopg's executemany sends one Bind/Execute per row and costs ~30 µs of Python per row;
    COPY streams the rows and unnest() takes a whole column as one array parameter, which
    made a 64-command batch several times faster (see bench/store_write.py).
    """

    def __init__(self, engine: Engine) -> None:
        self._quote = engine.dialect.identifier_preparer.quote
        self._upserts = {t.name: _unnest_upsert(t) for t in _WRITTEN_TABLES if t.name in _UPSERT_KEYS}
        self._copy_sql: dict[tuple[str, tuple[str, ...]], str] = {}

    def write(self, conn: Connection, rows: list[tuple[Table, Params]]) -> None:
        for table, params in rows:
            if table.name in _UPSERT_KEYS:
                columns = {_array_param(c.name): [row[c.name] for row in params] for c in table.columns}
                conn.execute(self._upserts[table.name], columns)
            else:
                self._copy(conn, table, params)

    def _copy(self, conn: Connection, table: Table, params: Params) -> None:
        names = tuple(params[0])  # every row of a table is built by the same function
        sql = self._copy_sql.get((table.name, names))
        if sql is None:
            columns = ", ".join(self._quote(name) for name in names)
            sql = f"COPY {self._quote(table.name)} ({columns}) FROM STDIN"
            self._copy_sql[(table.name, names)] = sql
        values = itemgetter(*names)
        # The same DBAPI connection as ``conn``, so the COPY is part of the batch's transaction.
        driver = conn.connection.driver_connection
        if driver is None:  # only a closed or invalidated connection has none
            raise RuntimeError("the batch's connection is closed")
        try:
            with driver.cursor() as cursor, cursor.copy(sql) as copy:
                for row in params:
                    copy.write_row(values(row))
        except psycopg.Error as error:
            # Raise what SQLAlchemy raises on the other paths (IntegrityError, ...).
            raise DBAPIError.instance(sql, None, error, psycopg.Error) from error


def _array_param(name: str) -> str:
    return f"{name}_values"  # a bind name apart from the column names INSERT reserves


def _unnest_upsert(table: Table) -> Insert:
    """``INSERT INTO t (cols) SELECT * FROM unnest(:col_values::type[], ...) ON CONFLICT ...``."""
    arrays: list[Any] = [
        cast(bindparam(_array_param(c.name), type_=ARRAY(c.type)), ARRAY(c.type)) for c in table.columns
    ]
    rows: Select[Any] = select(literal_column("*")).select_from(func.unnest(*arrays))
    stmt = postgresql.insert(table).from_select([c.name for c in table.columns], rows)
    return _on_conflict(stmt, table, sqlite_functions=False)


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


def _engine_state_params(changes: Changes, input_position: str | None) -> dict[str, Any]:
    return {
        "id": ENGINE_STATE_ID,
        "last_seq": changes.last_seq,
        "last_time": changes.last_time,
        "state_hash": changes.state_hash,
        "next_order_id": changes.next_order_id,
        "next_trade_id": changes.next_trade_id,
        "next_posting_id": changes.next_posting_id,
        "updated_at": int(time.time() * 1000),
        "input_position": input_position,
    }


# -- read side of the engine's own state --------------------------------------------------------


def _read_snapshot(conn: Connection, *, with_balances: bool = True) -> tuple[CoreSnapshot, str | None]:
    state = conn.execute(select(_engine_state).where(_engine_state.c.id == ENGINE_STATE_ID)).first()
    open_orders = conn.execute(
        select(*_view_columns(_orders, OrderView))
        .where(_orders.c.is_open)  # this exact form matches the partial index's predicate
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
        balances=(
            _views(conn, _balances, BalanceView, _balances.c.account_id, _balances.c.asset)
            if with_balances
            else []
        ),
        open_orders=[msgspec.convert(row._asdict(), OrderView) for row in open_orders],
        last_prices=_last_prices(conn),
    )
    return snapshot, state.state_hash if state else None


def _last_prices(conn: Connection) -> dict[str, int]:
    """Each market's last trade price (one index probe per market on ``(symbol, trade_id)``)."""
    prices: dict[str, int] = {}
    for (symbol,) in conn.execute(select(_markets.c.symbol)):
        price = conn.execute(
            select(_trades.c.price)
            .where(_trades.c.symbol == symbol)
            .order_by(_trades.c.trade_id.desc())
            .limit(1)
        ).scalar()
        if price is not None:
            prices[symbol] = price
    return prices


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
