"""Store reads the native API has no use for: public trades by id or by time, oldest first
(``GET /api/v3/aggTrades``).

Trades carry no time index; there is no need for one. The core's clock never runs backwards
and trade ids grow with it, so within a symbol ``time`` is non-decreasing in ``trade_id``: the
first trade at or after a time is found by a binary search over ids, each probe one seek of
the ``(symbol, trade_id)`` index. Every read is then one bounded index range.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from cambist.core.events import Trade
from cambist.store.models_trading import TradeRow, table_of

_trades = table_of(TradeRow)


def trades_after(
    engine: Engine,
    symbol: str,
    limit: int,
    *,
    from_id: int | None = None,
    start_time: int | None = None,
    end_time: int | None = None,
) -> list[Trade]:
    """Up to ``limit`` trades of ``symbol``, oldest first, with ``trade_id >= from_id``,
    ``time >= start_time`` and ``time <= end_time`` (each bound optional)."""
    t = _trades.c
    with engine.connect() as conn:
        first = from_id
        if start_time is not None:
            at = _first_at_or_after(conn, symbol, start_time)
            if at is None:
                return []
            first = at if first is None else max(first, at)
        query = select(_trades).where(t.symbol == symbol)
        if first is not None:
            query = query.where(t.trade_id >= first)
        rows = [_trade(row) for row in conn.execute(query.order_by(t.trade_id).limit(limit))]
    if end_time is not None:
        # Times are non-decreasing: the trades past the end are a suffix of the page.
        rows = [trade for trade in rows if trade.time <= end_time]
    return rows


def recent_trades(engine: Engine, symbol: str, limit: int, end_time: int | None = None) -> list[Trade]:
    """The newest ``limit`` trades of ``symbol`` (at or before ``end_time``), oldest first."""
    t = _trades.c
    with engine.connect() as conn:
        query = select(_trades).where(t.symbol == symbol)
        if end_time is not None:
            after = _first_at_or_after(conn, symbol, end_time + 1)
            if after is not None:
                query = query.where(t.trade_id < after)
        rows = [_trade(row) for row in conn.execute(query.order_by(t.trade_id.desc()).limit(limit))]
    rows.reverse()
    return rows


def _first_at_or_after(conn: Connection, symbol: str, time_ms: int) -> int | None:
    """The id of the first trade of ``symbol`` with ``time >= time_ms``; None if there is none."""
    t = _trades.c
    bounds = conn.execute(select(func.min(t.trade_id), func.max(t.trade_id)).where(t.symbol == symbol)).one()
    low, high = bounds[0], bounds[1]
    if low is None:
        return None

    def first_from(trade_id: int) -> tuple[int, int]:
        row = conn.execute(
            select(t.trade_id, t.time)
            .where(t.symbol == symbol, t.trade_id >= trade_id)
            .order_by(t.trade_id)
            .limit(1)
        ).one()
        return int(row[0]), int(row[1])

    if first_from(high)[1] < time_ms:
        return None
    # Smallest id x in [low, high] whose next trade (id >= x) is at or after time_ms: that
    # predicate only turns from false to true as x grows. About 30 probes for 10**9 ids.
    while low < high:
        middle = (low + high) // 2
        trade_id, trade_time = first_from(middle)
        if trade_time >= time_ms:
            high = middle
        else:
            low = trade_id + 1
    return first_from(low)[0]


def _trade(row: Any) -> Trade:
    return msgspec.convert(row._asdict(), Trade)


def window_trades(engine: Engine, symbol: str, since_ms: int | None) -> tuple[int | None, Trade | None]:
    """For a 24 h ticker: the id of the first trade at or after ``since_ms`` (None when there
    is none, or no ``since_ms``) and the last trade of ``symbol`` (None when it never traded)."""
    t = _trades.c
    with engine.connect() as conn:
        first = None if since_ms is None else _first_at_or_after(conn, symbol, since_ms)
        row = conn.execute(
            select(_trades).where(t.symbol == symbol).order_by(t.trade_id.desc()).limit(1)
        ).first()
    return first, None if row is None else _trade(row)
