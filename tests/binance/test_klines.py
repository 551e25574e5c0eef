"""``GET /api/v3/klines`` at the Binance intervals the store does not keep (3m, 30m, 2h, 6h, 8h,
12h, 3d, 1w, 1M), aggregated from the stored ones (``cambist.binance.candles``).

The core stamps trades with its wall clock, so a history over months cannot be traded here:
trades are crafted at chosen times and their buckets written into the store exactly as the
write side computes them (``store.trading.kline_params``), for markets of their own that never
trade. Each aggregated candle is then checked against the trades themselves, against the
native ``/api/v1/klines`` buckets it sums, and for its alignment (the stream hub's).
"""

# The fixtures of tests/api are imported by name; every test naming one "redefines" it.
# ruff: noqa: F811

from __future__ import annotations

import calendar
import datetime
import random
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import ccxt
import pytest
import pytest_asyncio
from ccxt.test.exchange.base import test_ohlcv as check_ohlcv
from litestar.testing import AsyncTestClient
from sqlalchemy import insert

from api.conftest import NewMarket, admin, client, new_market  # noqa: F401
from api.support import API
from cambist.binance import candles, present, public, stream_hub
from cambist.binance.stream_hub import close_time, open_time
from cambist.core.events import Trade
from cambist.core.types import Side
from cambist.store.models_trading import KlineRow, table_of
from cambist.store.queries import Kline
from cambist.store.trading import kline_params

pytestmark = pytest.mark.asyncio(loop_scope="module")

Client = AsyncTestClient[Any]
V3 = "/api/v3"
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
BASE_SCALE, QUOTE_SCALE = 8, 6  # new_market's base asset, USDT
AGGREGATED = ("3m", "30m", "2h", "6h", "8h", "12h", "3d", "1w", "1M")


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return calendar.timegm((year, month, day, hour, minute, 0)) * 1000


def crafted_trades(symbol: str, times: Iterable[int], seed: int = 7) -> list[Trade]:
    rng = random.Random(seed)
    trades = []
    for n, at in enumerate(sorted(times), start=1):
        price = rng.randrange(25_000, 35_000) * 10**QUOTE_SCALE // 100 * 100
        quantity = rng.randrange(1, 500) * 10**4
        trades.append(
            Trade(
                trade_id=n,
                seq=n,
                time=at,
                symbol=symbol,
                price=price,
                quantity=quantity,
                quote_quantity=price * quantity // 10**BASE_SCALE,
                taker_side=Side.BUY if n % 2 else Side.SELL,
                maker_order_id=2 * n,
                taker_order_id=2 * n + 1,
                maker_account_id=1,
                taker_account_id=2,
                maker_fee=0,
                maker_fee_asset="USDT",
                taker_fee=0,
                taker_fee_asset="USDT",
            )
        )
    return trades


def store_buckets(client: Client, trades: list[Trade]) -> None:
    """Write the buckets of ``trades`` at every stored interval, as the write side would."""
    with client.app.state.runtime.db.begin() as conn:
        conn.execute(insert(table_of(KlineRow)), kline_params(trades))


def expected(trades: list[Trade], interval: str) -> list[Kline]:
    """The candles of ``interval`` straight from the trades (the stream hub's alignment)."""
    grouped: dict[int, list[Trade]] = {}
    for trade in trades:
        grouped.setdefault(open_time(interval, trade.time), []).append(trade)
    return [
        Kline(
            symbol=group[0].symbol,
            interval=interval,
            open_time=opened,
            close_time=close_time(interval, opened),
            open=group[0].price,
            high=max(t.price for t in group),
            low=min(t.price for t in group),
            close=group[-1].price,
            volume=sum(t.quantity for t in group),
            quote_volume=sum(t.quote_quantity for t in group),
            trade_count=len(group),
        )
        for opened, group in sorted(grouped.items())
    ]


def rows(klines: list[Kline]) -> list[list[Any]]:
    return [present.kline(k, BASE_SCALE, QUOTE_SCALE) for k in klines]


async def v3(client: Client, symbol: str, interval: str, **params: Any) -> list[list[Any]]:
    response = await client.get(
        f"{V3}/klines", params={"symbol": symbol.replace("-", ""), "interval": interval, **params}
    )
    assert response.status_code == 200, response.text
    body: list[list[Any]] = response.json()
    return body


async def native(client: Client, symbol: str, interval: str) -> list[list[Any]]:
    """Every native bucket of ``symbol`` at a stored interval, oldest first."""
    out: list[list[Any]] = []
    start = 0
    while True:
        response = await client.get(
            f"{API}/klines/{symbol}", params={"interval": interval, "startTime": start, "limit": 1000}
        )
        assert response.status_code == 200, response.text
        page = response.json()["data"]
        out.extend(page)
        if len(page) < 1000:
            return out
        start = page[-1][0] + 1


# ---------------------------------------------------------------- crafted histories


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def history(client: Client, new_market: NewMarket) -> dict[str, Any]:
    """A market whose trades span late December 2023 to April 2024 (a year end, a leap
    February, weeks opened on every weekday): a few trades on most days, with gaps of days, and
    dense trading on some days so that 3m..12h candles hold many buckets."""
    symbol = await new_market()
    rng = random.Random(11)
    times: set[int] = set()
    day = ms(2023, 12, 20)
    while day < ms(2024, 4, 10):
        if rng.random() < 0.8:
            times.update(day + rng.randrange(DAY) for _ in range(rng.randrange(1, 4)))
        day += DAY
    for dense in (ms(2024, 1, 1), ms(2024, 2, 29), ms(2024, 3, 17)):
        times.update(dense + rng.randrange(DAY) for _ in range(150))
    # the first and last millisecond of a week, a month and a 3d candle
    times.update({ms(2024, 2, 5) - 1, ms(2024, 2, 5), ms(2024, 3, 1) - 1, ms(2024, 3, 1), 19_725 * DAY - 1})
    trades = crafted_trades(symbol, times)
    store_buckets(client, trades)
    return {"symbol": symbol, "trades": trades}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dense(client: Client, new_market: NewMarket) -> dict[str, Any]:
    """A trade every minute for 3300 minutes: 1100 complete 3m candles of three 1m buckets."""
    symbol = await new_market()
    first = ms(2024, 5, 6)
    trades = crafted_trades(symbol, (first + i * MINUTE + 17 for i in range(3300)), seed=3)
    store_buckets(client, trades)
    return {"symbol": symbol, "trades": trades}


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("interval", AGGREGATED)
async def test_aggregated_candles_are_the_trades_candles(
    client: Client, history: dict[str, Any], interval: str
) -> None:
    want = rows(expected(history["trades"], interval))
    assert len(want) <= 1000
    assert await v3(client, history["symbol"], interval, startTime=0, limit=1000) == want
    # without a start: the latest 1000 (here all of them)
    assert await v3(client, history["symbol"], interval, limit=1000) == want


@pytest.mark.parametrize("interval", AGGREGATED)
async def test_aggregated_candles_sum_the_native_buckets(
    client: Client, history: dict[str, Any], interval: str
) -> None:
    """Each candle is the sum of the native ``/api/v1/klines`` buckets of its source interval
    that open within it: first open, last close, extremes, summed volumes and counts."""
    got = await v3(client, history["symbol"], interval, startTime=0, limit=1000)
    source = await native(client, history["symbol"], candles.SOURCES[interval])
    assert sum(row[8] for row in got) == sum(row[8] for row in source) == len(history["trades"])
    used = 0
    for row in got:
        inside = [b for b in source if row[0] <= b[0] <= row[6]]
        assert inside and inside[0][0] == source[used][0]  # no bucket skipped or counted twice
        used += len(inside)
        assert Decimal(row[1]) == Decimal(inside[0][1]) and Decimal(row[4]) == Decimal(inside[-1][4])
        assert Decimal(row[2]) == max(Decimal(b[2]) for b in inside)
        assert Decimal(row[3]) == min(Decimal(b[3]) for b in inside)
        assert Decimal(row[5]) == sum(Decimal(b[5]) for b in inside)
        assert Decimal(row[7]) == sum(Decimal(b[7]) for b in inside)
        assert row[8] == sum(b[8] for b in inside)
        assert len(row) == 12 and row[9:] == ["0.00000000", "0.000000", "0"]
    assert used == len(source)


# ---------------------------------------------------------------- alignment


async def test_alignment_of_weeks_months_and_3d(client: Client, history: dict[str, Any]) -> None:
    symbol = history["symbol"]
    for row in await v3(client, symbol, "1w", startTime=0):
        opened = datetime.datetime.fromtimestamp(row[0] / 1000, tz=datetime.UTC)
        assert opened.weekday() == 0 and opened.time() == datetime.time(0)  # Monday 00:00 UTC
        assert row[6] == row[0] + 7 * DAY - 1
    months = await v3(client, symbol, "1M", startTime=0)
    assert [row[0] for row in months] == [
        ms(2023, 12, 1), ms(2024, 1, 1), ms(2024, 2, 1), ms(2024, 3, 1), ms(2024, 4, 1)
    ]  # fmt: skip
    assert [row[6] + 1 for row in months] == [
        ms(2024, 1, 1),
        ms(2024, 2, 1),
        ms(2024, 3, 1),
        ms(2024, 4, 1),
        ms(2024, 5, 1),
    ]  # fmt: skip (February 2024 has 29 days)
    for row in await v3(client, symbol, "3d", startTime=0):
        assert row[0] % (3 * DAY) == 0 and row[6] == row[0] + 3 * DAY - 1  # epoch-aligned, as Binance
    for interval in AGGREGATED:
        for row in await v3(client, symbol, interval, startTime=0, limit=1000):
            assert row[0] == open_time(interval, row[0]) == open_time(interval, row[6])  # the streams'
            assert row[6] == close_time(interval, row[0])
    # the edge trades: the last ms of a week/month/3d candle and the first of the next
    weeks = {row[0]: row for row in await v3(client, symbol, "1w", startTime=0)}
    assert ms(2024, 1, 29) in weeks and ms(2024, 2, 5) in weeks


async def test_rest_and_streams_accept_the_same_intervals_but_1s() -> None:
    assert stream_hub.INTERVALS == public.BINANCE_INTERVALS
    assert tuple(i for i in public.BINANCE_INTERVALS if i != "1s") == public.INTERVALS
    assert set(candles.SOURCES) | {"1m", "5m", "15m", "1h", "4h", "1d"} == set(public.INTERVALS)


# ---------------------------------------------------------------- startTime, endTime, limit


@pytest.mark.parametrize("interval", ["3m", "2h", "12h", "3d", "1w", "1M"])
async def test_time_range_and_limit(client: Client, history: dict[str, Any], interval: str) -> None:
    symbol = history["symbol"]
    every = rows(expected(history["trades"], interval))
    opens = [row[0] for row in every]
    picks = sorted({opens[0], opens[1], opens[len(opens) // 2], opens[-2], opens[-1]})
    bounds = [t + d for t in picks for d in (-1, 0, 1)] + [0, ms(2030, 1, 1)]
    for start in bounds:
        for limit in (1, 2, 7):
            want = [row for row in every if row[0] >= start][:limit]
            assert await v3(client, symbol, interval, startTime=start, limit=limit) == want, (start, limit)
    for end in bounds:
        for limit in (1, 3):
            want = [row for row in every if row[0] <= end][-limit:]
            assert await v3(client, symbol, interval, endTime=end, limit=limit) == want, (end, limit)
    for start in bounds[::4]:
        for end in bounds[1::3]:
            if start > end:
                continue
            want = [row for row in every if start <= row[0] <= end][:500]
            assert await v3(client, symbol, interval, startTime=start, endTime=end) == want, (start, end)
    # a start inside a candle begins at the next candle, whole (never a partial first candle)
    assert (await v3(client, symbol, interval, startTime=opens[0] + 1, limit=1))[0] == every[1]


async def test_limit_counts_aggregated_candles(client: Client, dense: dict[str, Any]) -> None:
    symbol = dense["symbol"]
    every = rows(expected(dense["trades"], "3m"))
    assert len(every) == 1100 and all(row[8] == 3 for row in every)
    assert await v3(client, symbol, "3m") == every[-500:]  # default 500, the latest
    assert await v3(client, symbol, "3m", limit=1000) == every[-1000:]
    assert await v3(client, symbol, "3m", limit=5000) == every[-1000:]  # at most 1000
    assert await v3(client, symbol, "3m", startTime=0) == every[:500]
    assert await v3(client, symbol, "3m", startTime=0, limit=1000) == every[:1000]
    # the source query is cut inside a candle: the candles kept are whole
    for limit in (1, 2, 999):
        got = await v3(client, symbol, "3m", startTime=every[50][0] - 1, limit=limit)
        assert got == every[50 : 50 + limit]
        got = await v3(client, symbol, "3m", endTime=every[-50][0] + 1, limit=limit)
        assert got == every[-50 - limit + 1 : len(every) - 49]
    assert await v3(client, symbol, "30m", startTime=0) == rows(expected(dense["trades"], "30m"))
    response = await client.get(
        f"{V3}/klines", params={"symbol": symbol.replace("-", ""), "interval": "3m", "limit": 0}
    )
    assert response.status_code == 400 and response.json()["code"] == -1130


async def test_times_beyond_the_calendar(client: Client, history: dict[str, Any]) -> None:
    symbol = history["symbol"]
    huge = 2**63 - 1
    assert await v3(client, symbol, "1M", startTime=huge) == []
    assert await v3(client, symbol, "1M", endTime=huge) == rows(expected(history["trades"], "1M"))
    assert await v3(client, symbol, "1w", startTime=ms(2030, 1, 1), endTime=huge) == []


async def test_1s_and_unknown_intervals_are_invalid(client: Client, history: dict[str, Any]) -> None:
    for interval in ("1s", "7m", "1H", "1min", "1W", "1mo"):
        response = await client.get(
            f"{V3}/klines", params={"symbol": history["symbol"].replace("-", ""), "interval": interval}
        )
        assert response.status_code == 400
        assert response.json() == {"code": -1120, "msg": "Invalid interval."}


async def test_ccxt_validates_aggregated_candles(client: Client, history: dict[str, Any]) -> None:
    """ccxt's own OHLCV validator (shipped in its wheel) over the crafted history's candles, as
    ccxt.binance parses them (the in-process ccxt client of test_public.py fetches live ones)."""
    exchange = ccxt.binance()  # parsing only: no request is made
    for interval in AGGREGATED:
        body = await v3(client, history["symbol"], interval, startTime=0, limit=1000)
        parsed = [exchange.parse_ohlcv(row) for row in body]
        assert [p[0] for p in parsed] == [row[0] for row in body]
        for entry in parsed:
            check_ohlcv(exchange, {}, "fetchOHLCV", entry, "T/USDT", exchange.milliseconds())
        assert sum(Decimal(str(p[5])) for p in parsed) == sum(Decimal(row[5]) for row in body)
