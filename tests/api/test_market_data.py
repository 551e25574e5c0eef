"""Public market data: markets, ticker, order book, klines, trades."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from .conftest import FundedUser, NewMarket
from .support import API, assert_error, placed

pytestmark = pytest.mark.asyncio(loop_scope="module")

Client = AsyncTestClient[Any]

MARKET_FIELDS = {
    "symbol",
    "baseAsset",
    "quoteAsset",
    "status",
    "tickSize",
    "lotSize",
    "minQuantity",
    "minNotional",
    "makerFee",
    "takerFee",
    "type",
}
TICKER_FIELDS = {
    "symbol",
    "lastPrice",
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
    "priceChange",
    "priceChangePercent",
    "bestBid",
    "bestAsk",
    "count",
    "openTime",
    "closeTime",
}
INTERVALS_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def get_json(client: Client, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------- markets


async def test_markets_list_has_every_field_of_the_contract(client: Client) -> None:
    body = await get_json(client, f"{API}/markets")
    assert body["nextCursor"] is None
    by_symbol = {m["symbol"]: m for m in body["data"]}
    assert {"BTC-USDT", "ETH-USDT", "ETH-BTC"} <= set(by_symbol)
    for market in body["data"]:
        assert set(market) >= MARKET_FIELDS
        assert market["type"] in ("spot", "perpetual")
        assert market["status"] in ("trading", "halted")
        for field in ("tickSize", "lotSize", "minQuantity", "minNotional", "makerFee", "takerFee"):
            assert isinstance(market[field], str) and "e" not in market[field].lower()
    btc = by_symbol["BTC-USDT"]
    assert {k: btc[k] for k in MARKET_FIELDS} == {
        "symbol": "BTC-USDT",
        "baseAsset": "BTC",
        "quoteAsset": "USDT",
        "status": "trading",
        "tickSize": "0.01",
        "lotSize": "0.0001",
        "minQuantity": "0.0001",
        "minNotional": "5",
        "makerFee": "0.001",
        "takerFee": "0.001",
        "type": "spot",
    }
    eth_btc = by_symbol["ETH-BTC"]
    assert (eth_btc["baseAsset"], eth_btc["quoteAsset"], eth_btc["tickSize"], eth_btc["lotSize"]) == (
        "ETH",
        "BTC",
        "0.00001",
        "0.001",
    )


async def test_one_market(client: Client) -> None:
    market = await get_json(client, f"{API}/markets/ETH-USDT")
    listed = {m["symbol"]: m for m in (await get_json(client, f"{API}/markets"))["data"]}
    assert market == listed["ETH-USDT"]


@pytest.mark.parametrize(
    "path",
    [
        "/markets/NOPE-USDT",
        "/ticker/NOPE-USDT",
        "/orderbook/NOPE-USDT",
        "/klines/NOPE-USDT",
        "/trades/NOPE-USDT",
        "/ticker/btc-usdt",
        "/orderbook/BTC",
    ],
)
async def test_unknown_symbol_is_404(client: Client, path: str) -> None:
    assert_error(await client.get(f"{API}{path}"), 404, "UNKNOWN_SYMBOL")


# ---------------------------------------------------------------- a market with a history


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def traded(client: Client, new_market: NewMarket, funded_user: FundedUser) -> dict[str, Any]:
    """A fresh market with two trades (30000 then 31500) and a book left behind:
    bids 29000 x 0.03 (two orders), 28000 x 0.01; asks 32000 x 0.01, 33000 x 0.005."""
    symbol = await new_market()
    base = symbol.split("-")[0]
    empty_ticker = await get_json(client, f"{API}/ticker/{symbol}")
    empty_book = await get_json(client, f"{API}/orderbook/{symbol}")
    seller = await funded_user(**{base: "1"})
    buyer = await funded_user(USDT="100000")
    other = await funded_user(USDT="100000")
    started = now_ms()

    async def order(user: Any, side: str, quantity: str, price: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"symbol": symbol, "side": side, "quantity": quantity}
        body.update({"type": "limit", "price": price} if price else {"type": "market"})
        return await placed(client, user, **body)

    await order(seller, "sell", "0.01", "30000")
    first = await order(buyer, "buy", "0.01")  # trade 1: 0.01 at 30000, taker buys
    await order(buyer, "buy", "0.02", "31500")
    second = await order(seller, "sell", "0.02")  # trade 2: 0.02 at 31500, taker sells
    book_sequence_before = (await get_json(client, f"{API}/orderbook/{symbol}"))["sequence"]
    await order(buyer, "buy", "0.01", "29000")
    await order(other, "buy", "0.02", "29000")
    await order(buyer, "buy", "0.01", "28000")
    await order(seller, "sell", "0.005", "33000")
    await order(seller, "sell", "0.01", "32000")
    return {
        "symbol": symbol,
        "started": started,
        "ended": now_ms(),
        "empty_ticker": empty_ticker,
        "empty_book": empty_book,
        "book_sequence_before": book_sequence_before,
        "trade_ids": [first["fills"][0]["tradeId"], second["fills"][0]["tradeId"]],
    }


async def test_ticker_of_a_market_without_trades(traded: dict[str, Any]) -> None:
    ticker = traded["empty_ticker"]
    assert set(ticker) >= TICKER_FIELDS
    assert ticker["symbol"] == traded["symbol"]
    assert ticker["lastPrice"] is None
    assert ticker["volume"] == "0" and ticker["quoteVolume"] == "0"
    assert ticker["count"] == 0
    assert ticker["bestBid"] is None and ticker["bestAsk"] is None


async def test_ticker_moves_with_trades(client: Client, traded: dict[str, Any]) -> None:
    ticker = await get_json(client, f"{API}/ticker/{traded['symbol']}")
    assert set(ticker) >= TICKER_FIELDS
    assert ticker["symbol"] == traded["symbol"]
    assert ticker["lastPrice"] == "31500"
    assert ticker["openPrice"] == "30000"
    assert ticker["highPrice"] == "31500"
    assert ticker["lowPrice"] == "30000"
    assert ticker["volume"] == "0.03"
    assert ticker["quoteVolume"] == "930"
    assert ticker["priceChange"] == "1500"
    assert ticker["priceChangePercent"] == "5.00"
    assert ticker["count"] == 2
    assert ticker["bestBid"] == "29000"
    assert ticker["bestAsk"] == "32000"
    assert ticker["closeTime"] - ticker["openTime"] == 86_400_000
    assert traded["ended"] - 1000 <= ticker["closeTime"] <= now_ms() + 1000


async def test_tickers_of_all_markets(client: Client, traded: dict[str, Any]) -> None:
    body = await get_json(client, f"{API}/ticker")
    by_symbol = {t["symbol"]: t for t in body["data"]}
    assert {"BTC-USDT", "ETH-USDT", "ETH-BTC", traded["symbol"]} <= set(by_symbol)
    assert by_symbol[traded["symbol"]]["lastPrice"] == "31500"


async def test_order_book_is_aggregated_and_sorted(client: Client, traded: dict[str, Any]) -> None:
    book = await get_json(client, f"{API}/orderbook/{traded['symbol']}")
    assert set(book) == {"symbol", "sequence", "bids", "asks"}
    assert book["symbol"] == traded["symbol"]
    assert book["bids"] == [["29000", "0.03"], ["28000", "0.01"]]
    assert book["asks"] == [["32000", "0.01"], ["33000", "0.005"]]
    assert isinstance(book["sequence"], int) and book["sequence"] > traded["book_sequence_before"]
    assert traded["empty_book"]["bids"] == [] and traded["empty_book"]["asks"] == []


async def test_order_book_depth(client: Client, traded: dict[str, Any]) -> None:
    path = f"{API}/orderbook/{traded['symbol']}"
    one = await get_json(client, path, depth=1)
    assert one["bids"] == [["29000", "0.03"]] and one["asks"] == [["32000", "0.01"]]
    most = await get_json(client, path, depth=1000)
    assert len(most["bids"]) == 2
    for depth in (0, -1, 1001, 10**30, "x", "1.5"):
        assert_error(await client.get(path, params={"depth": depth}), 400)


async def test_order_book_of_a_default_market_is_empty_without_demo(client: Client) -> None:
    book = await get_json(client, f"{API}/orderbook/ETH-BTC")
    assert book["bids"] == [] and book["asks"] == []


@pytest.mark.parametrize("interval", list(INTERVALS_MS))
async def test_klines_rows(client: Client, traded: dict[str, Any], interval: str) -> None:
    body = await get_json(client, f"{API}/klines/{traded['symbol']}", interval=interval)
    rows = body["data"]
    assert 1 <= len(rows) <= 2  # two trades, maybe on both sides of a bucket boundary
    span = INTERVALS_MS[interval]
    for row in rows:
        assert len(row) == 9
        open_time, open_, high, low, close, volume, close_time, quote_volume, count = row
        assert isinstance(open_time, int) and isinstance(close_time, int) and isinstance(count, int)
        assert all(isinstance(v, str) for v in (open_, high, low, close, volume, quote_volume))
        assert open_time % span == 0
        assert close_time == open_time + span - 1
        assert open_time <= traded["ended"] and close_time >= traded["started"]
        assert (
            Decimal(low)
            <= min(Decimal(open_), Decimal(close))
            <= max(Decimal(open_), Decimal(close))
            <= Decimal(high)
        )
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)  # oldest first
    assert rows[0][1] == "30000" and rows[-1][4] == "31500"
    assert sum(Decimal(r[5]) for r in rows) == Decimal("0.03")
    assert sum(Decimal(r[7]) for r in rows) == Decimal("930")
    assert sum(r[8] for r in rows) == 2
    if len(rows) == 1:
        assert rows[0][1:6] == ["30000", "31500", "30000", "31500", "0.03"]


async def test_klines_default_interval_and_time_range(client: Client, traded: dict[str, Any]) -> None:
    path = f"{API}/klines/{traded['symbol']}"
    default = await get_json(client, path)
    assert default == await get_json(client, path, interval="1m")
    assert (await get_json(client, path, startTime=now_ms() + 3_600_000))["data"] == []
    assert (await get_json(client, path, endTime=traded["started"] - 3_600_000))["data"] == []
    window = await get_json(client, path, startTime=traded["started"] - 60_000, endTime=traded["ended"])
    assert window["data"] == default["data"]
    assert len((await get_json(client, path, limit=1))["data"]) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"interval": "7m"},
        {"interval": "1M"},
        {"interval": "1w"},
        {"interval": ""},
        {"startTime": 2000, "endTime": 1000},
        {"startTime": "yesterday"},
        {"limit": 0},
        {"limit": "x"},
    ],
)
async def test_klines_bad_query_is_400(client: Client, params: dict[str, Any]) -> None:
    assert_error(await client.get(f"{API}/klines/BTC-USDT", params=params), 400)


@pytest.mark.parametrize(
    "params", [{"startTime": 10**30}, {"endTime": 10**30}, {"startTime": -1}, {"endTime": 2**63}]
)
async def test_klines_times_out_of_range_are_400(client: Client, params: dict[str, Any]) -> None:
    assert_error(await client.get(f"{API}/klines/BTC-USDT", params=params), 400, "INVALID_TIME_RANGE")


async def test_trades_newest_first(client: Client, traded: dict[str, Any]) -> None:
    body = await get_json(client, f"{API}/trades/{traded['symbol']}")
    rows = body["data"]
    assert [r["tradeId"] for r in rows] == list(reversed(traded["trade_ids"]))
    for row in rows:
        assert set(row) == {"tradeId", "price", "quantity", "takerSide", "time"}
        assert traded["started"] - 1000 <= row["time"] <= traded["ended"] + 1000
    assert [(r["price"], r["quantity"], r["takerSide"]) for r in rows] == [
        ("31500", "0.02", "sell"),
        ("30000", "0.01", "buy"),
    ]
    assert rows[0]["time"] >= rows[1]["time"]
    newest = await get_json(client, f"{API}/trades/{traded['symbol']}", limit=1)
    assert newest["data"] == rows[:1]
    for limit in (0, -1, "x"):
        assert_error(await client.get(f"{API}/trades/{traded['symbol']}", params={"limit": limit}), 400)


async def test_ticker_falling_price(client: Client, new_market: NewMarket, funded_user: FundedUser) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    seller = await funded_user(**{base: "1"})
    buyer = await funded_user(USDT="10000")
    for price in ("31500", "30000"):
        await placed(client, buyer, symbol=symbol, side="buy", type="limit", quantity="0.01", price=price)
        await placed(client, seller, symbol=symbol, side="sell", type="market", quantity="0.01")
    ticker = await get_json(client, f"{API}/ticker/{symbol}")
    assert (ticker["openPrice"], ticker["lastPrice"]) == ("31500", "30000")
    assert ticker["priceChange"] == "-1500"
    assert ticker["priceChangePercent"] == "-4.76"  # truncated toward zero
    assert ticker["bestBid"] is None and ticker["bestAsk"] is None
