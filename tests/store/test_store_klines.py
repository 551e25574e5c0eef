"""Klines aggregated by ``write_batch`` across batches and intervals, and the 24 h ticker window."""

from __future__ import annotations

import random

import pytest
from store_builders import SYMBOL, changes, journal, trade

from cambist.core.events import Trade
from cambist.store.models_trading import KLINE_INTERVALS_MS
from cambist.store.queries import Kline, TickerWindow, TradingQueries
from cambist.store.trading import TradingStore

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
DAY = 19_675 * DAY_MS  # a UTC midnight (2023-11-13), which is also a 4h, 1h, ... boundary


def model_klines(trades: list[Trade], symbol: str, interval: str) -> list[Kline]:
    """The obvious aggregation, one trade at a time: what the store must agree with."""
    interval_ms = KLINE_INTERVALS_MS[interval]
    buckets: dict[int, Kline] = {}
    for t in trades:
        if t.symbol != symbol:
            continue
        open_time = t.time - t.time % interval_ms
        old = buckets.get(open_time)
        buckets[open_time] = Kline(
            symbol=symbol,
            interval=interval,
            open_time=open_time,
            close_time=open_time + interval_ms - 1,
            open=old.open if old else t.price,
            high=max(old.high, t.price) if old else t.price,
            low=min(old.low, t.price) if old else t.price,
            close=t.price,
            volume=(old.volume if old else 0) + t.quantity,
            quote_volume=(old.quote_volume if old else 0) + t.quote_quantity,
            trade_count=(old.trade_count if old else 0) + 1,
        )
    return [buckets[key] for key in sorted(buckets)]


def write_in_batches(store: TradingStore, trades: list[Trade], sizes: list[int]) -> None:
    start = 0
    for seq, size in enumerate(sizes, start=1):
        batch = trades[start : start + size]
        start += size
        store.write_batch(journal(seq), changes(seq, trades=batch))
    assert start == len(trades)


def test_klines_merge_across_batches_and_day_and_4h_boundaries(
    store: TradingStore, queries: TradingQueries
) -> None:
    trades = [
        trade(1, DAY - 1, 100, 10),  # last ms of the previous day and 4h bucket
        trade(2, DAY, 110, 20),  # first ms of the new day
        trade(3, DAY + 30_000, 90, 30),
        trade(4, DAY + 4 * HOUR_MS - 1, 120, 40),  # last ms of the first 4h bucket
        trade(5, DAY + 4 * HOUR_MS, 105, 50),  # first ms of the second
        trade(6, DAY + 4 * HOUR_MS + 59_999, 95, 60),  # same minute, next batch
    ]
    write_in_batches(store, trades, [2, 2, 1, 1])

    days = queries.klines(SYMBOL, "1d", limit=10)
    assert [(k.open_time, k.trade_count) for k in days] == [(DAY - DAY_MS, 1), (DAY, 5)]
    assert (days[1].open, days[1].high, days[1].low, days[1].close) == (110, 120, 90, 95)
    assert days[1].close_time == DAY + DAY_MS - 1
    assert days[1].volume == 200 and days[1].quote_volume == sum(t.quote_quantity for t in trades[1:])

    fours = queries.klines(SYMBOL, "4h", limit=10)
    assert [(k.open_time, k.open, k.close, k.trade_count) for k in fours] == [
        (DAY - 4 * HOUR_MS, 100, 100, 1),
        (DAY, 110, 120, 3),
        (DAY + 4 * HOUR_MS, 105, 95, 2),
    ]
    for interval in KLINE_INTERVALS_MS:
        assert queries.klines(SYMBOL, interval, limit=1000) == model_klines(trades, SYMBOL, interval)


def test_klines_match_the_model_for_random_batches(store: TradingStore, queries: TradingQueries) -> None:
    rng = random.Random(20240611)
    trades: list[Trade] = []
    time = DAY - 2 * HOUR_MS
    for trade_id in range(1, 301):
        time += rng.choice([0, 1, 500, 20_000, 61_000, 7 * MINUTE_MS, 3 * HOUR_MS])
        symbol = rng.choice([SYMBOL, "ETH-USDT"])
        trades.append(trade(trade_id, time, rng.randint(90, 110), rng.randint(1, 10**6), symbol=symbol))
    sizes: list[int] = []
    while sum(sizes) < len(trades):
        sizes.append(min(rng.randint(1, 40), len(trades) - sum(sizes)))
    write_in_batches(store, trades, sizes)

    for symbol in (SYMBOL, "ETH-USDT"):
        for interval in KLINE_INTERVALS_MS:
            assert queries.klines(symbol, interval, limit=1000) == model_klines(trades, symbol, interval)


def test_klines_range_and_limit(store: TradingStore, queries: TradingQueries) -> None:
    trades = [trade(n, DAY + n * MINUTE_MS, 100 + n, 1) for n in range(10)]  # one per minute
    write_in_batches(store, trades, [10])
    minute = [DAY + n * MINUTE_MS for n in range(10)]

    def opens(klines: list[Kline]) -> list[int]:
        return [k.open_time for k in klines]

    assert opens(queries.klines(SYMBOL, "1m", limit=3)) == minute[7:]  # the latest, oldest first
    assert opens(queries.klines(SYMBOL, "1m", start_time=minute[2], limit=3)) == minute[2:5]
    assert opens(queries.klines(SYMBOL, "1m", end_time=minute[5], limit=2)) == minute[4:6]
    assert opens(queries.klines(SYMBOL, "1m", minute[3] - 1, minute[6], limit=100)) == minute[3:7]
    assert queries.klines(SYMBOL, "1m", start_time=minute[9] + 1) == []
    assert queries.klines("ETH-USDT", "1m") == []
    with pytest.raises(ValueError, match="interval"):
        queries.klines(SYMBOL, "2m")


def test_ticker_window_covers_the_last_24_hours(store: TradingStore, queries: TradingQueries) -> None:
    now = DAY + 12 * HOUR_MS + 30_000
    trades = [
        trade(1, now - 25 * HOUR_MS, 500, 1_000),  # too old
        trade(2, now - 23 * HOUR_MS, 100, 10),
        trade(3, now - 23 * HOUR_MS + 1, 130, 20),
        trade(4, now - HOUR_MS, 80, 30),
        trade(5, now - 1, 120, 40),
        trade(6, now - 2, 999, 1, symbol="ETH-USDT"),  # another market
    ]
    write_in_batches(store, trades, [3, 3])

    first_minute = (now - 23 * HOUR_MS) - (now - 23 * HOUR_MS) % MINUTE_MS
    last_minute = (now - 1) - (now - 1) % MINUTE_MS
    assert queries.ticker_window(SYMBOL, now) == TickerWindow(
        symbol=SYMBOL,
        open=100,
        high=130,
        low=80,
        close=120,
        volume=100,
        quote_volume=sum(t.quote_quantity for t in trades[1:5]),
        trade_count=4,
        open_time=first_minute,
        close_time=last_minute + MINUTE_MS - 1,
    )


def test_ticker_window_is_none_without_recent_trades(store: TradingStore, queries: TradingQueries) -> None:
    assert queries.ticker_window(SYMBOL, DAY) is None
    write_in_batches(store, [trade(1, DAY, 100, 1)], [1])
    assert queries.ticker_window(SYMBOL, DAY + DAY_MS + MINUTE_MS) is None
    window = queries.ticker_window(SYMBOL, DAY + 1)
    assert window is not None and (window.open, window.close, window.trade_count) == (100, 100, 1)
