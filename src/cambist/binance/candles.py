"""Klines at the Binance intervals the store does not keep (``GET /api/v3/klines``), aggregated
in the read from the stored buckets of a finer interval that divides them:

    3m from 1m; 30m from 15m; 2h and 6h from 1h; 8h and 12h from 4h; 3d, 1w and 1M from 1d.

A candle opens with its first bucket's open and closes with its last bucket's close; high and
low are the extremes; volumes, quote volumes and trade counts are summed. Like the stored
buckets, an aggregated candle exists only when something traded in it.

Alignment is the stream hub's (``stream_hub.open_time``/``close_time``, used here so that REST
and the ``@kline_<interval>`` streams always agree): fixed intervals are aligned to the Unix
epoch, 3d included (1970-01-01, so a 3d candle opens on a day number divisible by 3, as on
Binance); 1w candles open on Monday 00:00 UTC; 1M candles open on the 1st of the month 00:00
UTC and close at the end of the month - 1 ms.

1s is not offered: the store keeps no per-second buckets, and building them from trades would
mean a trade scan per request. The stream hub does give ``@kline_1s`` (from the live trades).

Parameters mean what they mean for the stored intervals (``TradingQueries.klines``): the time
bounds apply to the candle's open time and are inclusive; with a start, the first ``limit``
candles from it, else the latest ``limit`` candles (opened at or before the end). The source
buckets are read by time range, never cut by a row count inside a candle: one query reads at
most ``limit * ratio + 1`` rows (``ratio`` = buckets per candle, at most 31 for 1M from 1d),
which span more than ``limit`` candles whenever the query is cut, so the ``limit`` candles
kept are all complete.
"""

from __future__ import annotations

import calendar
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from cambist.binance.stream_hub import FIXED_INTERVALS_MS, close_time, open_time
from cambist.store.models_trading import KLINE_INTERVALS_MS, KlineRow, table_of
from cambist.store.queries import Kline

# The interval each aggregated interval is built from (the coarsest stored one that divides it).
SOURCES: dict[str, str] = {
    "3m": "1m",
    "30m": "15m",
    "2h": "1h",
    "6h": "1h",
    "8h": "4h",
    "12h": "4h",
    "3d": "1d",
    "1w": "1d",
    "1M": "1d",
}
_MONTH_DAYS_MAX = 31
# Candle times are computed through datetime for 1M: keep bounds below year 9999.
_HORIZON_MS = calendar.timegm((9999, 1, 1, 0, 0, 0)) * 1000

_klines = table_of(KlineRow)


def ratio(interval: str) -> int:
    """The most source buckets one candle of ``interval`` holds."""
    if interval == "1M":
        return _MONTH_DAYS_MAX
    return FIXED_INTERVALS_MS[interval] // KLINE_INTERVALS_MS[SOURCES[interval]]


def klines(
    engine: Engine,
    symbol: str,
    interval: str,
    start_time: int | None = None,
    end_time: int | None = None,
    limit: int = 500,
) -> list[Kline]:
    """Candles of ``interval`` (one of ``SOURCES``), oldest first: from ``start_time`` on, or
    else the latest ``limit`` ones; both bounds on the open time, inclusive."""
    source = SOURCES[interval]
    limit = max(1, limit)
    if end_time is not None and end_time >= _HORIZON_MS:
        end_time = None
    if start_time is not None and start_time >= _HORIZON_MS:
        return []
    # Source buckets from the first candle opened at or after the start ...
    low: int | None = None
    if start_time is not None:
        low = open_time(interval, start_time)
        if low < start_time:
            low = close_time(interval, low) + 1
    # ... to the end of the candle holding the end (its open is at or before the end).
    high: int | None = None
    if end_time is not None:
        high = close_time(interval, open_time(interval, end_time)) + 1
    if low is not None and high is not None and low >= high:
        return []

    k = _klines.c
    query = select(_klines).where(k.symbol == symbol, k.interval == source)
    if low is not None:
        query = query.where(k.open_time >= low)
    if high is not None:
        query = query.where(k.open_time < high)
    ascending = start_time is not None
    order = k.open_time if ascending else k.open_time.desc()
    query = query.order_by(order).limit(limit * ratio(interval) + 1)
    with engine.connect() as conn:
        rows = list(conn.execute(query))

    candles: list[Kline] = []
    group: list[Any] = []
    opened = -1
    for row in rows:
        at = open_time(interval, row.open_time)
        if group and at != opened:
            candles.append(_candle(symbol, interval, opened, group, ascending))
            if len(candles) == limit:
                group = []
                break
            group = []
        opened = at
        group.append(row)
    if group:
        # The last group is whole unless the query was cut; a cut query spans more than
        # ``limit`` candles, so the loop above has stopped before reaching its last group.
        candles.append(_candle(symbol, interval, opened, group, ascending))
    if not ascending:
        candles.reverse()
    return candles


def _candle(symbol: str, interval: str, opened: int, rows: list[Any], ascending: bool) -> Kline:
    first, last = (rows[0], rows[-1]) if ascending else (rows[-1], rows[0])
    return Kline(
        symbol=symbol,
        interval=interval,
        open_time=opened,
        close_time=close_time(interval, opened),
        open=int(first.open),
        high=max(int(r.high) for r in rows),
        low=min(int(r.low) for r in rows),
        close=int(last.close),
        volume=sum(int(r.volume) for r in rows),
        quote_volume=sum(int(r.quote_volume) for r in rows),
        trade_count=sum(int(r.trade_count) for r in rows),
    )


__all__ = ["SOURCES", "klines", "ratio"]
