"""Read side of the trading store: what the gateway and market data ask for.

Every method opens its own short connection, runs bounded, indexed queries and returns plain
immutable values: the core views (``OrderView``, ``Trade``, ...) where one fits, otherwise the
small Structs below. Nothing here writes; the engine is the only writer (``trading.py``).

Lists are newest first with keyset pagination: the cursor is the last id of the page, the next
page continues strictly below it, so pages stay stable while new rows arrive on top. Every
limit is clamped to ``1..MAX_LIMIT``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar

import msgspec
from sqlalchemy import Select, Table, func, literal_column, select
from sqlalchemy.engine import Engine, Row

from cambist.core.events import AssetView, BalanceView, MarketView, OrderView, Trade
from cambist.core.types import Liquidity, Side
from cambist.store.models_trading import (
    KLINE_INTERVALS_MS,
    AssetRow,
    BalanceRow,
    FillRow,
    KlineRow,
    LedgerEntryRow,
    MarketRow,
    OrderRow,
    TradeRow,
    table_of,
)

MAX_LIMIT = 1000
TICKER_WINDOW_MS = 86_400_000  # the ticker is a rolling 24 h
TICKER_INTERVAL = "1m"  # the finest kline: the ticker window is built from it

OrderStatusFilter = Literal["open", "closed", "all"]
V = TypeVar("V", bound=msgspec.Struct)
AnyRow = Row[*tuple[Any, ...]]

_assets = table_of(AssetRow)
_markets = table_of(MarketRow)
_orders = table_of(OrderRow)
_trades = table_of(TradeRow)
_fills = table_of(FillRow)
_balances = table_of(BalanceRow)
_klines = table_of(KlineRow)
_ledger = table_of(LedgerEntryRow)


class Fill(msgspec.Struct, frozen=True):
    """One account's side of a trade. ``id`` orders fills and is the pagination cursor."""

    id: int
    account_id: int
    trade_id: int
    order_id: int
    symbol: str
    side: Side
    price: int
    quantity: int
    quote_quantity: int
    fee: int
    fee_asset: str
    liquidity: Liquidity
    time: int
    seq: int


class Kline(msgspec.Struct, frozen=True):
    symbol: str
    interval: str
    open_time: int
    close_time: int  # open_time + interval - 1
    open: int
    high: int
    low: int
    close: int
    volume: int  # base units
    quote_volume: int
    trade_count: int


class TickerWindow(msgspec.Struct, frozen=True):
    """Trading of one symbol over the 1m buckets of the last 24 h (``ticker_window``)."""

    symbol: str
    open: int  # first trade price in the window
    high: int
    low: int
    close: int  # last trade price
    volume: int
    quote_volume: int
    trade_count: int
    open_time: int  # open time of the first bucket with trades
    close_time: int  # close time of the last bucket with trades


class Credited(msgspec.Struct, frozen=True):
    credit_id: str
    account_id: int
    asset: str
    amount: int


class TradingQueries:
    """Bounded reads of assets, markets, orders, fills, balances, trades and klines."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- reference data ---------------------------------------------------------------------

    def list_assets(self) -> list[AssetView]:
        return self._views(_select_view(_assets, AssetView).order_by(_assets.c.asset), AssetView)

    def list_markets(self) -> list[MarketView]:
        return self._views(_select_view(_markets, MarketView).order_by(_markets.c.symbol), MarketView)

    # -- orders ------------------------------------------------------------------------------

    def get_order(self, account_id: int, order_id: int) -> OrderView | None:
        """The order if it exists AND belongs to ``account_id`` (others' orders are not found)."""
        o = _orders.c
        query = _select_view(_orders, OrderView).where(o.order_id == order_id, o.account_id == account_id)
        return _first(self._views(query, OrderView))

    def get_order_by_client_id(self, account_id: int, client_order_id: str) -> OrderView | None:
        o = _orders.c
        query = _select_view(_orders, OrderView).where(
            o.account_id == account_id, o.client_order_id == client_order_id
        )
        return _first(self._views(query, OrderView))

    def list_orders(
        self,
        account_id: int,
        symbol: str | None,
        status: OrderStatusFilter,
        limit: int,
        cursor_order_id: int | None = None,
    ) -> tuple[list[OrderView], int | None]:
        """A page of the account's orders, newest first, and the cursor of the next page."""
        o = _orders.c
        query = _select_view(_orders, OrderView).where(o.account_id == account_id)
        if symbol is not None:
            query = query.where(o.symbol == symbol)
        # Plain ``is_open`` (not ``IS TRUE``): the form the partial indexes' predicate matches.
        if status == "open":
            query = query.where(o.is_open)
        elif status == "closed":
            query = query.where(~o.is_open)
        elif status != "all":
            raise ValueError(f"unknown order status filter {status!r}")
        if cursor_order_id is not None:
            query = query.where(o.order_id < cursor_order_id)
        return self._page(query.order_by(o.order_id.desc()), OrderView, limit, "order_id")

    # -- fills -------------------------------------------------------------------------------

    def order_fills(self, order_id: int, limit: int = MAX_LIMIT) -> list[Fill]:
        """The fills of one order, oldest first (callers check the order's owner first)."""
        f = _fills.c
        query = select(_fills).where(f.order_id == order_id).order_by(f.id).limit(_clamp(limit))
        return self._views(query, Fill)

    def fills_of_orders(self, order_ids: Sequence[int]) -> dict[int, list[Fill]]:
        """The fills of several orders in one query, each list oldest first (a page of orders)."""
        if not order_ids:
            return {}
        f = _fills.c
        query = select(_fills).where(f.order_id.in_(list(order_ids))).order_by(f.id)
        grouped: dict[int, list[Fill]] = {}
        for fill in self._views(query, Fill):
            grouped.setdefault(fill.order_id, []).append(fill)
        return grouped

    def list_fills(
        self, account_id: int, symbol: str | None, limit: int, cursor: int | None = None
    ) -> tuple[list[Fill], int | None]:
        """A page of the account's fills, newest first, and the cursor (a fill id) of the next."""
        f = _fills.c
        query = select(_fills).where(f.account_id == account_id)
        if symbol is not None:
            query = query.where(f.symbol == symbol)
        if cursor is not None:
            query = query.where(f.id < cursor)
        return self._page(query.order_by(f.id.desc()), Fill, limit, "id")

    # -- balances ----------------------------------------------------------------------------

    def balances(self, account_id: int) -> list[BalanceView]:
        b = _balances.c
        query = _select_view(_balances, BalanceView).where(b.account_id == account_id).order_by(b.asset)
        return self._views(query.limit(MAX_LIMIT), BalanceView)

    # -- public market data ------------------------------------------------------------------

    def public_trades(self, symbol: str, limit: int) -> list[Trade]:
        t = _trades.c
        query = select(_trades).where(t.symbol == symbol).order_by(t.trade_id.desc()).limit(_clamp(limit))
        return self._views(query, Trade)

    def last_trade(self, symbol: str) -> Trade | None:
        return _first(self.public_trades(symbol, 1))

    def klines(
        self,
        symbol: str,
        interval: str,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 500,
    ) -> list[Kline]:
        """Buckets oldest first: from ``start_time`` on, or else the latest ``limit`` ones.

        Both bounds apply to the bucket's open time and are inclusive.
        """
        if interval not in KLINE_INTERVALS_MS:
            raise ValueError(f"unknown kline interval {interval!r}")
        k = _klines.c
        query = select(_klines).where(k.symbol == symbol, k.interval == interval)
        if end_time is not None:
            query = query.where(k.open_time <= end_time)
        if start_time is not None:
            query = query.where(k.open_time >= start_time).order_by(k.open_time)
            return self._views(query.limit(_clamp(limit)), Kline)
        # No start: take the newest ``limit`` buckets, then put them back in time order.
        latest = self._views(query.order_by(k.open_time.desc()).limit(_clamp(limit)), Kline)
        latest.reverse()
        return latest

    def ticker_window(self, symbol: str, now_ms: int) -> TickerWindow | None:
        """Aggregate the 1m klines opened in the last 24 h; None when nothing traded."""
        k = _klines.c
        in_window = (
            k.symbol == symbol,
            k.interval == TICKER_INTERVAL,
            k.open_time >= now_ms - TICKER_WINDOW_MS,
            k.open_time <= now_ms,
        )
        totals_query = select(
            func.min(k.open_time).label("first"),
            func.max(k.open_time).label("last"),
            func.max(k.high).label("high"),
            func.min(k.low).label("low"),
            func.sum(k.volume).label("volume"),
            func.sum(k.quote_volume).label("quote_volume"),
            func.sum(k.trade_count).label("trade_count"),
        ).where(*in_window)
        with self._engine.connect() as conn:
            totals = conn.execute(totals_query).one()
            if totals.first is None:
                return None
            # The window's open and close are those of its first and last bucket (PK lookups).
            edges_query = select(k.open_time, k.open, k.close, k.close_time).where(
                *in_window[:2], k.open_time.in_([totals.first, totals.last])
            )
            edges = {row.open_time: row for row in conn.execute(edges_query)}
        return _ticker(symbol, totals, edges[totals.first], edges[totals.last])

    # -- credits -----------------------------------------------------------------------------

    def credit(self, credit_id: str) -> Credited | None:
        """The credit applied under ``credit_id`` (its user leg), or None if there was none."""
        e = _ledger.c
        query = (
            select(e.account_id, e.asset, e.delta)
            # A literal 'credit' (not a bound parameter) lets SQLite use the partial index.
            .where(e.kind == literal_column("'credit'"), e.ref == credit_id, e.delta > 0)
            .order_by(e.id)
            .limit(1)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else Credited(credit_id, row.account_id, row.asset, row.delta)

    # -- helpers -----------------------------------------------------------------------------

    def _views(self, query: Select[Any], view: type[V]) -> list[V]:
        with self._engine.connect() as conn:
            return [_convert(row, view) for row in conn.execute(query)]

    def _page(self, query: Select[Any], view: type[V], limit: int, key: str) -> tuple[list[V], int | None]:
        """Fetch one row more than asked: it tells whether a next page exists, at no extra query."""
        limit = _clamp(limit)
        rows = self._views(query.limit(limit + 1), view)
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        next_cursor: int = getattr(rows[-1], key)
        return rows, next_cursor


def _select_view(table: Table, view: type[msgspec.Struct]) -> Select[Any]:
    """SELECT exactly the view's fields, so extra columns (is_open) never reach the caller."""
    return select(*(table.c[name] for name in view.__struct_fields__))


def _convert(row: AnyRow, view: type[V]) -> V:
    # convert() validates and turns the stored strings back into the views' StrEnums.
    return msgspec.convert(row._asdict(), view)


def _first(rows: Sequence[V]) -> V | None:
    return rows[0] if rows else None


def _clamp(limit: int) -> int:
    return max(1, min(limit, MAX_LIMIT))


def _ticker(symbol: str, totals: AnyRow, first: AnyRow, last: AnyRow) -> TickerWindow:
    # PostgreSQL sums BIGINT into NUMERIC (a Decimal, exact): int() brings it back to units.
    return TickerWindow(
        symbol=symbol,
        open=first.open,
        high=totals.high,
        low=totals.low,
        close=last.close,
        volume=int(totals.volume),
        quote_volume=int(totals.quote_volume),
        trade_count=int(totals.trade_count),
        open_time=first.open_time,
        close_time=last.close_time,
    )
