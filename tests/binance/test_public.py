"""The public ``/api/v3`` endpoints (binance-compat.md §1-2): shapes, values equal to the native
API's, limits and Binance's errors; then the real ccxt client (4.5.90) run in-process over the
same app, its responses checked with the validators shipped in its wheel (§5).

ccxt never touches the network here: its ``fetch`` is routed to the Litestar test client, so
ccxt builds every URL and parses every body exactly as it would against a server.
"""

# The fixtures of tests/api (one app per module, users, markets) are imported by name; every
# test naming one as a parameter "redefines" it for the linter.
# ruff: noqa: F811

from __future__ import annotations

import importlib
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
import pytest
import pytest_asyncio
from ccxt.test.exchange.base import test_market as check_market
from ccxt.test.exchange.base import test_ohlcv as check_ohlcv
from ccxt.test.exchange.base import test_order_book as check_order_book
from ccxt.test.exchange.base import test_ticker as check_ticker
from ccxt.test.exchange.base import test_trade as check_trade
from litestar.testing import AsyncTestClient

from api.conftest import FundedUser, NewMarket, admin, client, funded_user, new_market  # noqa: F401
from api.support import API, placed
from cambist.binance import present

pytestmark = pytest.mark.asyncio(loop_scope="module")

Client = AsyncTestClient[Any]
V3 = "/api/v3"
HOST = "http://cambist.test"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def ok(client: Client, path: str, **params: Any) -> Any:
    response = await client.get(f"{V3}{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def binance_error(client: Client, path: str, code: int, **params: Any) -> str:
    response = await client.get(f"{V3}{path}", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"code", "msg"} and body["code"] == code, body
    assert isinstance(body["msg"], str) and body["msg"]
    return str(body["msg"])


# ---------------------------------------------------------------- a market with a history


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def traded(client: Client, new_market: NewMarket, funded_user: FundedUser) -> dict[str, Any]:
    """A fresh market with two trades (30000 then 31500, taker buy then taker sell) and a book:
    bids 29000 x 0.03 (two orders), 28000 x 0.01; asks 32000 x 0.01, 33000 x 0.005."""
    symbol = await new_market()
    base = symbol.split("-")[0]
    seller = await funded_user(**{base: "1"})
    buyer = await funded_user(USDT="100000")
    other = await funded_user(USDT="100000")
    started = now_ms()

    async def order(user: Any, side: str, quantity: str, price: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"symbol": symbol, "side": side, "quantity": quantity}
        body.update({"type": "limit", "price": price} if price else {"type": "market"})
        return await placed(client, user, **body)

    await order(seller, "sell", "0.01", "30000")
    first = await order(buyer, "buy", "0.01")
    await order(buyer, "buy", "0.02", "31500")
    second = await order(seller, "sell", "0.02")
    await order(buyer, "buy", "0.01", "29000")
    await order(other, "buy", "0.02", "29000")
    await order(buyer, "buy", "0.01", "28000")
    await order(seller, "sell", "0.005", "33000")
    await order(seller, "sell", "0.01", "32000")
    return {
        "symbol": symbol,
        "binance": symbol.replace("-", ""),
        "base": base,
        "started": started,
        "ended": now_ms(),
        "trade_ids": [first["fills"][0]["tradeId"], second["fills"][0]["tradeId"]],
    }


# ---------------------------------------------------------------- general and exchangeInfo


async def test_ping_and_time(client: Client) -> None:
    assert await ok(client, "/ping") == {}
    before = now_ms()
    body = await ok(client, "/time")
    assert set(body) == {"serverTime"} and before <= body["serverTime"] <= now_ms()


async def test_exchange_info_lists_every_market_with_binance_filters(client: Client) -> None:
    body = await ok(client, "/exchangeInfo")
    assert set(body) == {"timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"}
    assert body["timezone"] == "UTC" and body["exchangeFilters"] == []
    by_symbol = {s["symbol"]: s for s in body["symbols"]}
    assert {"BTCUSDT", "ETHUSDT", "ETHBTC"} <= set(by_symbol)
    btc = by_symbol["BTCUSDT"]
    assert btc["status"] == "TRADING"
    assert (btc["baseAsset"], btc["quoteAsset"]) == ("BTC", "USDT")
    assert (btc["baseAssetPrecision"], btc["quotePrecision"], btc["quoteAssetPrecision"]) == (8, 6, 6)
    assert btc["orderTypes"] == list(present.ORDER_TYPES)
    assert set(btc["orderTypes"]) == {
        "LIMIT",
        "LIMIT_MAKER",
        "MARKET",
        "STOP_LOSS",
        "STOP_LOSS_LIMIT",
        "TAKE_PROFIT",
        "TAKE_PROFIT_LIMIT",
    }
    assert btc["isSpotTradingAllowed"] is True and btc["quoteOrderQtyMarketAllowed"] is True
    assert btc["permissions"] == []
    assert btc["defaultSelfTradePreventionMode"] == "EXPIRE_MAKER"
    assert btc["allowedSelfTradePreventionModes"] == ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]
    assert "code" not in body
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert set(filters) == {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "NOTIONAL", "MAX_NUM_ORDERS"}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.010000"
    assert filters["PRICE_FILTER"]["minPrice"] == "0.010000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00010000"
    assert filters["LOT_SIZE"]["minQty"] == "0.00010000"
    assert filters["MARKET_LOT_SIZE"]["stepSize"] == "0.00010000"
    assert filters["NOTIONAL"]["minNotional"] == "5.000000"
    assert filters["MAX_NUM_ORDERS"]["maxNumOrders"] == 1000
    for f in filters.values():
        for value in f.values():
            if isinstance(value, str) and value[:1].isdigit():
                assert "e" not in value.lower() and Decimal(value) >= 0, f
    # maxima are multiples of the step, so a client rounding to the step never exceeds them
    assert Decimal(filters["LOT_SIZE"]["maxQty"]) % Decimal("0.0001") == 0
    assert Decimal(filters["PRICE_FILTER"]["maxPrice"]) % Decimal("0.01") == 0
    eth_btc = by_symbol["ETHBTC"]
    eth_filters = {f["filterType"]: f for f in eth_btc["filters"]}
    assert eth_filters["PRICE_FILTER"]["tickSize"] == "0.00001000"
    assert eth_filters["LOT_SIZE"]["stepSize"] == "0.00100000"


async def test_exchange_info_matches_the_native_markets(client: Client) -> None:
    response = await client.get(f"{API}/markets")
    native = {m["symbol"].replace("-", ""): m for m in response.json()["data"]}
    symbols = (await ok(client, "/exchangeInfo"))["symbols"]
    for entry in symbols:
        market = native[entry["symbol"]]
        filters = {f["filterType"]: f for f in entry["filters"]}
        assert Decimal(filters["PRICE_FILTER"]["tickSize"]) == Decimal(market["tickSize"])
        assert Decimal(filters["LOT_SIZE"]["stepSize"]) == Decimal(market["lotSize"])
        assert Decimal(filters["LOT_SIZE"]["minQty"]) == Decimal(market["minQuantity"])
        assert Decimal(filters["NOTIONAL"]["minNotional"]) == Decimal(market["minNotional"])
        assert entry["status"] == {"trading": "TRADING", "halted": "HALT"}[market["status"]]


async def test_exchange_info_filters_by_symbol_and_symbols(client: Client) -> None:
    one = await ok(client, "/exchangeInfo", symbol="ETHBTC")
    assert [s["symbol"] for s in one["symbols"]] == ["ETHBTC"]
    two = await ok(client, "/exchangeInfo", symbols='["ETHUSDT","BTCUSDT"]')
    assert [s["symbol"] for s in two["symbols"]] == ["ETHUSDT", "BTCUSDT"]
    await binance_error(client, "/exchangeInfo", -1121, symbol="NOPEUSDT")
    await binance_error(client, "/exchangeInfo", -1121, symbols='["BTCUSDT","NOPE"]')
    await binance_error(client, "/exchangeInfo", -1100, symbols="BTCUSDT")
    await binance_error(client, "/exchangeInfo", -1128, symbol="BTCUSDT", symbols='["BTCUSDT"]')


async def test_unknown_parameters_are_ignored(client: Client) -> None:
    body = await ok(client, "/exchangeInfo", symbol="BTCUSDT", permissions="SPOT", whatever="1")
    assert [s["symbol"] for s in body["symbols"]] == ["BTCUSDT"]


# ---------------------------------------------------------------- depth


async def test_depth_equals_the_native_order_book(client: Client, traded: dict[str, Any]) -> None:
    body = await ok(client, "/depth", symbol=traded["binance"])
    assert set(body) == {"lastUpdateId", "bids", "asks"}  # no T/E on spot (P3)
    native = (await client.get(f"{API}/orderbook/{traded['symbol']}")).json()
    assert body["lastUpdateId"] == native["sequence"]
    assert body["bids"] == [["29000.000000", "0.03000000"], ["28000.000000", "0.01000000"]]
    assert body["asks"] == [["32000.000000", "0.01000000"], ["33000.000000", "0.00500000"]]
    for side in ("bids", "asks"):
        assert [[Decimal(p), Decimal(q)] for p, q in body[side]] == [
            [Decimal(p), Decimal(q)] for p, q in native[side]
        ]


async def test_depth_limit(client: Client, traded: dict[str, Any]) -> None:
    one = await ok(client, "/depth", symbol=traded["binance"], limit=1)
    assert len(one["bids"]) == 1 and len(one["asks"]) == 1
    assert one["bids"][0][0] == "29000.000000" and one["asks"][0][0] == "32000.000000"
    # Any value up to 5000 is served (ccxt.pro asks 1000; freqtrade 1, 5 or 20), beyond is capped.
    for limit in (5, 20, 1000, 5000, 6000):
        body = await ok(client, "/depth", symbol=traded["binance"], limit=limit)
        assert len(body["bids"]) == 2 and len(body["asks"]) == 2
    await binance_error(client, "/depth", -1130, symbol=traded["binance"], limit=0)
    await binance_error(client, "/depth", -1100, symbol=traded["binance"], limit="ten")
    await binance_error(client, "/depth", -1100, symbol=traded["binance"], limit="-5")
    await binance_error(client, "/depth", -1105, symbol=traded["binance"], limit="")


@pytest.mark.parametrize(
    "path", ["/depth", "/trades", "/aggTrades", "/klines", "/ticker/24hr", "/ticker/price"]
)
async def test_unknown_and_missing_symbols(client: Client, path: str) -> None:
    params = {"interval": "1m"} if path == "/klines" else {}
    msg = await binance_error(client, path, -1121, symbol="NOPEUSDT", **params)
    assert msg == "Invalid symbol."
    if path.startswith("/ticker"):
        return  # without a symbol the tickers are those of every market
    msg = await binance_error(client, path, -1102, **params)
    assert msg == "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
    await binance_error(client, path, -1102, symbol="", **params)


async def test_errors_are_never_the_native_shape(client: Client) -> None:
    response = await client.get(f"{V3}/klines", params={"symbol": "BTCUSDT", "interval": "7m"})
    assert response.status_code == 400 and response.json() == {"code": -1120, "msg": "Invalid interval."}


# ---------------------------------------------------------------- trades and aggTrades


async def test_trades_equal_the_native_trades(client: Client, traded: dict[str, Any]) -> None:
    body = await ok(client, "/trades", symbol=traded["binance"])
    native = (await client.get(f"{API}/trades/{traded['symbol']}")).json()["data"]
    assert [t["id"] for t in body] == traded["trade_ids"] == [t["tradeId"] for t in reversed(native)]
    first, second = body
    assert first == {
        "id": traded["trade_ids"][0],
        "price": "30000.000000",
        "qty": "0.01000000",
        "quoteQty": "300.000000",
        "time": first["time"],
        "isBuyerMaker": False,  # the taker bought
        "isBestMatch": True,
    }
    assert second["isBuyerMaker"] is True and second["price"] == "31500.000000"
    assert second["quoteQty"] == "630.000000"
    assert [t["time"] for t in body] == [t["time"] for t in reversed(native)]
    assert traded["started"] <= first["time"] <= second["time"] <= traded["ended"]
    assert [t["id"] for t in await ok(client, "/trades", symbol=traded["binance"], limit=1)] == [
        traded["trade_ids"][1]
    ]
    assert len(await ok(client, "/trades", symbol=traded["binance"], limit=5000)) == 2
    await binance_error(client, "/trades", -1130, symbol=traded["binance"], limit=0)


async def test_agg_trades_one_per_trade(client: Client, traded: dict[str, Any]) -> None:
    body = await ok(client, "/aggTrades", symbol=traded["binance"])
    trades = await ok(client, "/trades", symbol=traded["binance"])
    assert len(body) == 2
    for agg, trade in zip(body, trades, strict=True):
        assert agg == {
            "a": trade["id"],
            "p": trade["price"],
            "q": trade["qty"],
            "f": trade["id"],
            "l": trade["id"],
            "T": trade["time"],
            "m": trade["isBuyerMaker"],
            "M": True,
        }


async def test_agg_trades_by_id_and_time(client: Client, traded: dict[str, Any]) -> None:
    symbol = traded["binance"]
    first_id, second_id = traded["trade_ids"]
    trades = await ok(client, "/trades", symbol=symbol)
    first_time, second_time = trades[0]["time"], trades[1]["time"]

    async def ids(**params: Any) -> list[int]:
        return [t["a"] for t in await ok(client, "/aggTrades", symbol=symbol, **params)]

    assert await ids(fromId=first_id) == [first_id, second_id]
    assert await ids(fromId=first_id + 1) == [second_id]
    assert await ids(fromId=second_id + 1) == []
    assert await ids(fromId=0, limit=1) == [first_id]
    # ccxt's fetch_trades(since): startTime=since and endTime=since+1h (P5), limit unclamped
    assert await ids(startTime=first_time, endTime=first_time + 3_600_000, limit=12000) == [
        first_id,
        second_id,
    ]
    assert await ids(startTime=second_time) == (
        [second_id] if second_time > first_time else [first_id, second_id]
    )
    assert await ids(startTime=second_time + 1) == []
    assert await ids(startTime=first_time - 1000, endTime=first_time) == [first_id] + (
        [second_id] if second_time == first_time else []
    )
    assert await ids(endTime=first_time - 1) == []
    assert await ids(limit=1) == [second_id]  # the most recent
    await binance_error(client, "/aggTrades", -1127, symbol=symbol, startTime=0, endTime=3_600_001)
    await binance_error(client, "/aggTrades", -1023, symbol=symbol, startTime=10, endTime=9)
    await binance_error(client, "/aggTrades", -1100, symbol=symbol, fromId="x")
    await binance_error(client, "/aggTrades", -1100, symbol=symbol, startTime="1.5")


async def test_agg_trades_time_search_over_many_trades(
    client: Client,
    new_market: NewMarket,
    funded_user: FundedUser,
) -> None:
    """The id search for startTime (reads.py) over a longer, interleaved history."""
    symbol, other = await new_market(), await new_market()
    seller = await funded_user(**{symbol.split("-")[0]: "10", other.split("-")[0]: "10"})
    buyer = await funded_user(USDT="100000")

    async def trade(market: str) -> None:
        sell = {"side": "sell", "type": "limit", "quantity": "0.1", "price": "100"}
        await placed(client, seller, symbol=market, **sell)
        await placed(client, buyer, symbol=market, side="buy", type="market", quantity="0.1")

    for i in range(12):
        await trade(symbol)
        if i % 3 == 0:
            await trade(other)  # trade ids of another market in between
            await trade(symbol)
    name = symbol.replace("-", "")
    trades = await ok(client, "/trades", symbol=name)
    assert len(trades) == 16
    for trade in trades:
        got = await ok(client, "/aggTrades", symbol=name, startTime=trade["time"])
        expected = [t["id"] for t in trades if t["time"] >= trade["time"]]
        assert [t["a"] for t in got] == expected


# ---------------------------------------------------------------- klines


async def test_klines_equal_the_native_klines(client: Client, traded: dict[str, Any]) -> None:
    for interval in ("1m", "5m", "15m", "1h", "4h", "1d"):
        body = await ok(client, "/klines", symbol=traded["binance"], interval=interval)
        native = (await client.get(f"{API}/klines/{traded['symbol']}", params={"interval": interval})).json()[
            "data"
        ]
        assert len(body) == len(native) >= 1
        for row, want in zip(body, native, strict=True):
            assert len(row) == 12
            assert row[0] == want[0] and row[6] == want[6] and row[8] == want[8]
            for i in (1, 2, 3, 4, 5, 7):
                assert Decimal(row[i]) == Decimal(want[i])
            assert row[9:] == ["0.00000000", "0.000000", "0"]  # taker-buy volumes are not stored
    last = (await ok(client, "/klines", symbol=traded["binance"], interval="1d"))[-1]
    assert last[1:6] == ["30000.000000", "31500.000000", "30000.000000", "31500.000000", "0.03000000"]
    assert last[7] == "930.000000" and last[8] == 2
    assert last[6] - last[0] == 86_400_000 - 1


async def test_klines_time_range_and_limit(client: Client, traded: dict[str, Any]) -> None:
    symbol = traded["binance"]
    rows = await ok(client, "/klines", symbol=symbol, interval="1m", limit=1000)
    open_time = rows[0][0]
    assert await ok(client, "/klines", symbol=symbol, interval="1m", startTime=open_time + 60_000) == [
        r for r in rows if r[0] >= open_time + 60_000
    ]
    assert await ok(client, "/klines", symbol=symbol, interval="1m", endTime=open_time - 1) == []
    assert await ok(client, "/klines", symbol=symbol, interval="1m", startTime=open_time, limit=1) == rows[:1]
    assert len(await ok(client, "/klines", symbol=symbol, interval="1m", limit=5000)) == len(rows)
    await binance_error(client, "/klines", -1130, symbol=symbol, interval="1m", limit=0)
    await binance_error(client, "/klines", -1023, symbol=symbol, interval="1m", startTime=2, endTime=1)


async def test_klines_aggregated_intervals_sum_the_native_klines(
    client: Client, traded: dict[str, Any]
) -> None:
    """3m..1M are aggregated from a stored interval (tests/binance/test_klines.py covers them over
    crafted histories); here over the fixture's live trades."""
    sources = {"3m": "1m", "30m": "15m", "2h": "1h", "6h": "1h", "8h": "4h", "12h": "4h"}
    sources.update({"3d": "1d", "1w": "1d", "1M": "1d"})
    for interval, source in sources.items():
        body = await ok(client, "/klines", symbol=traded["binance"], interval=interval)
        native = (await client.get(f"{API}/klines/{traded['symbol']}", params={"interval": source})).json()[
            "data"
        ]
        assert body and sum(row[8] for row in body) == sum(row[8] for row in native) == 2
        for row in body:
            inside = [b for b in native if row[0] <= b[0] <= row[6]]
            assert Decimal(row[1]) == Decimal(inside[0][1]) and Decimal(row[4]) == Decimal(inside[-1][4])
            assert Decimal(row[2]) == max(Decimal(b[2]) for b in inside)
            assert Decimal(row[3]) == min(Decimal(b[3]) for b in inside)
            assert Decimal(row[5]) == sum(Decimal(b[5]) for b in inside)
            assert Decimal(row[7]) == sum(Decimal(b[7]) for b in inside)
            assert row[8] == sum(b[8] for b in inside)


@pytest.mark.parametrize("interval", ["1s", "7m", "1H", "1min", "1W", "1mo"])
async def test_klines_unknown_intervals_and_1s_are_invalid(client: Client, interval: str) -> None:
    msg = await binance_error(client, "/klines", -1120, symbol="BTCUSDT", interval=interval)
    assert msg == "Invalid interval."


async def test_klines_need_an_interval(client: Client) -> None:
    await binance_error(client, "/klines", -1102, symbol="BTCUSDT")


# ---------------------------------------------------------------- tickers


TICKER_FIELDS = {
    "symbol",
    "priceChange",
    "priceChangePercent",
    "weightedAvgPrice",
    "prevClosePrice",
    "lastPrice",
    "lastQty",
    "bidPrice",
    "bidQty",
    "askPrice",
    "askQty",
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
    "openTime",
    "closeTime",
    "firstId",
    "lastId",
    "count",
}


async def test_ticker_24hr_of_one_symbol(client: Client, traded: dict[str, Any]) -> None:
    body = await ok(client, "/ticker/24hr", symbol=traded["binance"])
    assert set(body) == TICKER_FIELDS  # and no "time" (§2.2)
    native = (await client.get(f"{API}/ticker/{traded['symbol']}")).json()
    assert body["symbol"] == traded["binance"]
    assert body["lastPrice"] == "31500.000000" and Decimal(native["lastPrice"]) == 31500
    assert body["openPrice"] == body["prevClosePrice"] == "30000.000000"
    assert (body["highPrice"], body["lowPrice"]) == ("31500.000000", "30000.000000")
    assert body["volume"] == "0.03000000" and body["quoteVolume"] == "930.000000"
    assert body["priceChange"] == "1500.000000" and body["priceChangePercent"] == "5.000"
    assert body["weightedAvgPrice"] == "31000.000000"  # 930 / 0.03
    assert body["lastQty"] == "0.02000000"
    assert (body["bidPrice"], body["bidQty"]) == ("29000.000000", "0.03000000")
    assert (body["askPrice"], body["askQty"]) == ("32000.000000", "0.01000000")
    assert (body["firstId"], body["lastId"], body["count"]) == (*traded["trade_ids"], 2)
    assert body["closeTime"] - body["openTime"] == 86_400_000
    for name in ("volume", "quoteVolume", "highPrice", "lowPrice", "openPrice", "lastPrice"):
        assert Decimal(body[name]) == Decimal(native[name])


async def test_ticker_24hr_lists(client: Client, traded: dict[str, Any]) -> None:
    everything = await ok(client, "/ticker/24hr")
    assert isinstance(everything, list)
    names = [t["symbol"] for t in everything]
    assert {"BTCUSDT", "ETHUSDT", "ETHBTC", traded["binance"]} <= set(names)
    chosen = await ok(
        client, "/ticker/24hr", symbols=json.dumps([traded["binance"], "ETHBTC"], separators=(",", ":"))
    )
    assert [t["symbol"] for t in chosen] == [traded["binance"], "ETHBTC"]
    single = await ok(client, "/ticker/24hr", symbol=traded["binance"])
    moving = ("openTime", "closeTime")
    assert {k: v for k, v in chosen[0].items() if k not in moving} == {
        k: v for k, v in single.items() if k not in moving
    }
    mini = await ok(client, "/ticker/24hr", symbol=traded["binance"], type="MINI")
    assert "bidPrice" not in mini and mini["lastPrice"] == "31500.000000" and mini["count"] == 2
    await binance_error(client, "/ticker/24hr", -1130, symbol=traded["binance"], type="HUGE")
    await binance_error(client, "/ticker/24hr", -1100, symbols="[BTCUSDT]")
    await binance_error(client, "/ticker/24hr", -1121, symbols='["BTCUSDT","NOPEUSDT"]')


async def test_ticker_of_a_market_without_trades(client: Client, new_market: NewMarket) -> None:
    symbol = (await new_market()).replace("-", "")
    body = await ok(client, "/ticker/24hr", symbol=symbol)
    assert body["lastPrice"] == body["openPrice"] == "0.000000"
    assert body["volume"] == "0.00000000" and body["count"] == 0
    assert (body["firstId"], body["lastId"]) == (-1, -1)
    assert body["bidPrice"] == "0.000000" and body["bidQty"] == "0.00000000"
    assert await ok(client, "/ticker/price", symbol=symbol) == {"symbol": symbol, "price": "0.000000"}


async def test_ticker_price_and_book_ticker(client: Client, traded: dict[str, Any]) -> None:
    symbol = traded["binance"]
    assert await ok(client, "/ticker/price", symbol=symbol) == {"symbol": symbol, "price": "31500.000000"}
    prices = await ok(client, "/ticker/price")
    assert isinstance(prices, list) and {"symbol": symbol, "price": "31500.000000"} in prices
    book = await ok(client, "/ticker/bookTicker", symbol=symbol)
    assert book == {
        "symbol": symbol,
        "bidPrice": "29000.000000",
        "bidQty": "0.03000000",
        "askPrice": "32000.000000",
        "askQty": "0.01000000",
    }
    books = await ok(client, "/ticker/bookTicker", symbols=f'["{symbol}"]')
    assert books == [book]
    await binance_error(client, "/ticker/bookTicker", -1121, symbol="NOPEUSDT")


# ---------------------------------------------------------------- ccxt, in process


class InProcessBinance(ccxt_async.binance):  # type: ignore[misc]
    """ccxt.binance whose HTTP goes to the Litestar test client instead of the network."""

    def __init__(self, client: Client) -> None:
        super().__init__(
            {
                "urls": {"api": {"public": f"{HOST}/api/v3", "private": f"{HOST}/api/v3"}},
                "options": {
                    "defaultType": "spot",
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                },
                # ccxt's test_load_markets expects these kinds unless told there are none (§5.7)
                "has": {"swap": False, "future": False, "option": False},
            }
        )
        self._client = client
        self.requests: list[str] = []

    async def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == HOST, url
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.requests.append(f"{method} {parts.path}")
        response = await self._client.request(
            method, path, content=body.encode() if body else None, headers=headers or {}
        )
        text = response.text
        data = self.parse_json(text)
        headers_out = dict(response.headers)
        self.handle_errors(
            response.status_code, response.reason_phrase, url, method, headers_out, text, data, headers, body
        )
        self.handle_http_status_code(response.status_code, response.reason_phrase, url, method, text)
        return data


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def exchange(client: Client) -> Any:
    ex = InProcessBinance(client)
    try:
        yield ex
    finally:
        await ex.close()


def unified(traded: dict[str, Any]) -> str:
    return f"{traded['base']}/USDT"


async def test_ccxt_loads_the_markets(exchange: Any, traded: dict[str, Any]) -> None:
    # "async" is a keyword: the module cannot be named in an import statement
    load_markets_test = importlib.import_module(
        "ccxt.test.exchange.async.test_load_markets"
    ).test_load_markets
    await load_markets_test(exchange, {})
    for symbol in ("BTC/USDT", "ETH/USDT", "ETH/BTC", unified(traded)):
        market = exchange.market(symbol)
        check_market(exchange, {}, "loadMarkets", market)
        assert market["spot"] and market["active"]
    btc = exchange.market("BTC/USDT")
    assert btc["id"] == "BTCUSDT" and btc["lowercaseId"] == "btcusdt"
    assert btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 0.0001
    assert btc["limits"]["amount"]["min"] == 0.0001 and btc["limits"]["cost"]["min"] == 5
    assert set(exchange.requests) == {"GET /api/v3/exchangeInfo"}
    # ccxt's create_order checks the type against orderTypes client-side (P1)
    assert exchange.market("BTC/USDT")["info"]["orderTypes"] == list(present.ORDER_TYPES)


async def test_ccxt_ticker_tickers_and_prices(exchange: Any, traded: dict[str, Any]) -> None:
    await exchange.load_markets()
    symbol = unified(traded)
    ticker = await exchange.fetch_ticker(symbol)
    # the fixture's book is wide on purpose (29000/32000): last is not within 1 % of its middle
    check_ticker(exchange, {"lastBetweenBidAsk": True}, "fetchTicker", ticker, symbol)
    assert (ticker["last"], ticker["bid"], ticker["ask"]) == (31500, 29000, 32000)
    assert (ticker["baseVolume"], ticker["quoteVolume"], ticker["vwap"]) == (0.03, 930, 31000)
    assert ticker["percentage"] == 5 and ticker["timestamp"] is not None
    tickers = await exchange.fetch_tickers([symbol, "ETH/BTC"])
    assert set(tickers) == {symbol, "ETH/BTC"}
    check_ticker(exchange, {}, "fetchTickers", tickers[symbol], symbol)
    everything = await exchange.fetch_tickers()
    assert symbol in everything and "BTC/USDT" in everything
    bids_asks = await exchange.fetch_bids_asks([symbol])
    assert (bids_asks[symbol]["bid"], bids_asks[symbol]["ask"]) == (29000, 32000)
    check_ticker(exchange, {}, "fetchBidsAsks", bids_asks[symbol], symbol)
    prices = await exchange.fetch_last_prices([symbol])
    assert prices[symbol]["price"] == 31500


async def test_ccxt_order_book(exchange: Any, traded: dict[str, Any]) -> None:
    await exchange.load_markets()
    symbol = unified(traded)
    for limit in (None, 5, 1000):
        book = await exchange.fetch_order_book(symbol, limit)
        # spot /depth has no timestamp (§5.3)
        check_order_book(exchange, {"timestamp": True, "datetime": True}, "fetchOrderBook", book, symbol)
        assert book["bids"] == [[29000, 0.03], [28000, 0.01]]
        assert book["asks"] == [[32000, 0.01], [33000, 0.005]]
        assert book["timestamp"] is None and isinstance(book["nonce"], int)


async def test_ccxt_ohlcv(exchange: Any, traded: dict[str, Any]) -> None:
    await exchange.load_markets()
    symbol = unified(traded)
    timeframes = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
    for timeframe in timeframes:  # the stored intervals and those aggregated from them
        rows = await exchange.fetch_ohlcv(symbol, timeframe)
        assert rows
        assert sum(row[5] for row in rows) == pytest.approx(0.03)
        for row in rows:
            check_ohlcv(exchange, {}, "fetchOHLCV", row, symbol, exchange.milliseconds())
    since = (await exchange.fetch_ohlcv(symbol, "1m"))[0][0]
    assert (await exchange.fetch_ohlcv(symbol, "1m", since, 1))[0][0] == since
    since = (await exchange.fetch_ohlcv(symbol, "2h"))[0][0]
    assert (await exchange.fetch_ohlcv(symbol, "2h", since, 1))[0][0] == since
    with pytest.raises(ccxt_async.BadRequest):
        await exchange.fetch_ohlcv(symbol, "1s")  # -1120: no per-second candles are kept


async def test_ccxt_trades(exchange: Any, traded: dict[str, Any]) -> None:
    await exchange.load_markets()
    symbol = unified(traded)
    trades = await exchange.fetch_trades(symbol, None, 12000)  # ccxt's own test's limit (P5)
    assert [t["id"] for t in trades] == [str(i) for i in traded["trade_ids"]]
    assert [t["side"] for t in trades] == ["buy", "sell"]
    for trade in trades:
        check_trade(exchange, {}, "fetchTrades", trade, symbol, exchange.milliseconds(), True)
    since = trades[0]["timestamp"]
    assert [t["id"] for t in await exchange.fetch_trades(symbol, since)] == [t["id"] for t in trades]
    direct = await exchange.fetch_trades(symbol, None, None, {"method": "publicGetTrades"})
    assert [(t["id"], t["side"], t["price"], t["amount"]) for t in direct] == [
        (t["id"], t["side"], t["price"], t["amount"]) for t in trades
    ]


async def test_ccxt_maps_errors(exchange: Any) -> None:
    await exchange.load_markets()
    with pytest.raises(ccxt_async.BadSymbol):
        await exchange.public_get_depth({"symbol": "NOPEUSDT"})
    with pytest.raises(ccxt_async.BadRequest):
        await exchange.public_get_klines({"symbol": "BTCUSDT", "interval": "1s"})


async def test_ccxt_called_only_the_public_surface(exchange: Any) -> None:
    allowed = {
        "GET /api/v3/exchangeInfo",
        "GET /api/v3/ticker/24hr",
        "GET /api/v3/ticker/bookTicker",
        "GET /api/v3/ticker/price",
        "GET /api/v3/depth",
        "GET /api/v3/klines",
        "GET /api/v3/aggTrades",
        "GET /api/v3/trades",
    }
    assert set(exchange.requests) <= allowed, set(exchange.requests) - allowed
