"""Public market data: markets, ticker, order book, candlesticks, trades."""

from __future__ import annotations

import time
from typing import Annotated

from litestar import get
from litestar.params import FromPath, FromQuery, QueryParameter

from cambist.api.deps import RuntimeDep
from cambist.api.errors import bad_request, not_found
from cambist.api.money import fmt
from cambist.api.pagination import INT64_MAX, Page, clamp_limit
from cambist.api.presenters import market_body
from cambist.api.schemas import MarketResponse, OrderBookResponse, PublicTradeResponse, TickerResponse
from cambist.core.events import MarketView
from cambist.marketdata.ticker import TickerCache
from cambist.store.models_trading import KLINE_INTERVALS_MS

DEPTH_MAX = 1000
DEPTH_DEFAULT = 100
BOOK_CACHE_MAX = 256  # rendered order books kept, by (symbol, sequence, depth, scales)
KLINES_DEFAULT = 500
DAY_MS = 86_400_000

KlineRow = tuple[int, str, str, str, str, str, int, str, int]


def _market(runtime: RuntimeDep, symbol: str) -> MarketView:
    market = runtime.hub.markets.get(symbol)
    if market is None:
        raise not_found("UNKNOWN_SYMBOL", f"unknown symbol {symbol}")
    return market


@get("/api/v1/markets", tags=["market data"], summary="All markets")
async def markets(runtime: RuntimeDep) -> Page[MarketResponse]:
    assets = runtime.hub.assets
    data = [market_body(m, assets) for _, m in sorted(runtime.hub.markets.items())]
    return Page(data=data, next_cursor=None)


@get("/api/v1/markets/{symbol:str}", tags=["market data"], summary="One market")
async def market(symbol: FromPath[str], runtime: RuntimeDep) -> MarketResponse:
    return market_body(_market(runtime, symbol), runtime.hub.assets)


async def _ticker(runtime: RuntimeDep, market: MarketView) -> TickerResponse:
    cache: TickerCache[TickerResponse] = runtime.ticker_cache
    now = time.time_ns() // 1_000_000
    symbol = market.symbol
    version = runtime.hub.trade_version(symbol)
    depth = runtime.hub.depth(symbol)
    cached = cache.get(symbol, version, depth.sequence, now)
    if cached is not None:
        return cached
    window = await runtime.read(runtime.queries.ticker_window, symbol, now)
    base, quote = runtime.hub.assets[market.base_asset], runtime.hub.assets[market.quote_asset]
    best_bid = fmt(depth.bids[0][0], quote) if depth.bids else None
    best_ask = fmt(depth.asks[0][0], quote) if depth.asks else None
    if window is None:
        last = await runtime.read(runtime.queries.last_trade, symbol)
        last_price = fmt(last.price, quote) if last is not None else None
        ticker = TickerResponse(
            symbol=symbol,
            last_price=last_price,
            open_price=last_price,
            high_price=last_price,
            low_price=last_price,
            volume="0",
            quote_volume="0",
            price_change="0" if last_price else None,
            price_change_percent="0" if last_price else None,
            best_bid=best_bid,
            best_ask=best_ask,
            count=0,
            open_time=now - DAY_MS,
            close_time=now,
        )
    else:
        change = window.close - window.open
        percent = _percent(change, window.open)
        ticker = TickerResponse(
            symbol=symbol,
            last_price=fmt(window.close, quote),
            open_price=fmt(window.open, quote),
            high_price=fmt(window.high, quote),
            low_price=fmt(window.low, quote),
            volume=fmt(window.volume, base),
            quote_volume=fmt(window.quote_volume, quote),
            price_change=fmt(change, quote),
            price_change_percent=percent,
            best_bid=best_bid,
            best_ask=best_ask,
            count=window.trade_count,
            open_time=now - DAY_MS,
            close_time=now,
        )
    cache.put(symbol, version, depth.sequence, now, ticker)
    return ticker


def _percent(change: int, base: int) -> str:
    """Percentage with two decimals, truncated toward zero, from integers only."""
    if base == 0:
        return "0"
    hundredths = abs(change) * 10_000 // base
    sign = "-" if change < 0 and hundredths else ""
    return f"{sign}{hundredths // 100}.{hundredths % 100:02d}"


@get("/api/v1/ticker/{symbol:str}", tags=["market data"], summary="24 h rolling ticker")
async def ticker(symbol: FromPath[str], runtime: RuntimeDep) -> TickerResponse:
    return await _ticker(runtime, _market(runtime, symbol))


@get("/api/v1/ticker", tags=["market data"], summary="24 h rolling tickers of all markets")
async def tickers(runtime: RuntimeDep) -> Page[TickerResponse]:
    data = [await _ticker(runtime, m) for _, m in sorted(runtime.hub.markets.items())]
    return Page(data=data, next_cursor=None)


@get("/api/v1/orderbook/{symbol:str}", tags=["market data"], summary="Aggregated order book")
async def orderbook(
    symbol: FromPath[str], runtime: RuntimeDep, depth: FromQuery[int] = DEPTH_DEFAULT
) -> OrderBookResponse:
    market = _market(runtime, symbol)
    if not 1 <= depth <= DEPTH_MAX:
        raise bad_request("INVALID_DEPTH", f"depth must be between 1 and {DEPTH_MAX}")
    snapshot = runtime.hub.depth(symbol)
    # The book changes only at a commit: format each (snapshot, depth) once, not per request
    # (format_units was 14 % of the server's CPU under 64 readers).
    base, quote = runtime.hub.assets[market.base_asset], runtime.hub.assets[market.quote_asset]
    key = (symbol, snapshot.sequence, depth, base, quote)
    cached = runtime.book_cache.get(key)
    if cached is not None:
        return cached
    body = OrderBookResponse(
        symbol=symbol,
        sequence=snapshot.sequence,
        bids=[(fmt(p, quote), fmt(q, base)) for p, q in snapshot.bids[:depth]],
        asks=[(fmt(p, quote), fmt(q, base)) for p, q in snapshot.asks[:depth]],
    )
    if len(runtime.book_cache) >= BOOK_CACHE_MAX:
        runtime.book_cache.clear()  # bounded; stale sequences are never asked for again
    runtime.book_cache[key] = body
    return body


@get("/api/v1/klines/{symbol:str}", tags=["market data"], summary="Candlesticks, oldest first")
async def klines(
    symbol: FromPath[str],
    runtime: RuntimeDep,
    interval: FromQuery[str] = "1m",
    start_time: Annotated[int | None, QueryParameter(name="startTime")] = None,
    end_time: Annotated[int | None, QueryParameter(name="endTime")] = None,
    limit: FromQuery[int] = KLINES_DEFAULT,
) -> Page[KlineRow]:
    market = _market(runtime, symbol)
    if interval not in KLINE_INTERVALS_MS:
        raise bad_request("INVALID_INTERVAL", "interval must be one of " + ", ".join(KLINE_INTERVALS_MS))
    for value in (start_time, end_time):
        if value is not None and not 0 <= value <= INT64_MAX:
            raise bad_request("INVALID_TIME_RANGE", "startTime and endTime are milliseconds since the epoch")
    if start_time is not None and end_time is not None and start_time > end_time:
        raise bad_request("INVALID_TIME_RANGE", "startTime must not be after endTime")
    rows = await runtime.read(
        runtime.queries.klines, symbol, interval, start_time, end_time, clamp_limit(limit)
    )
    base, quote = runtime.hub.assets[market.base_asset], runtime.hub.assets[market.quote_asset]
    data: list[KlineRow] = [
        (
            k.open_time,
            fmt(k.open, quote),
            fmt(k.high, quote),
            fmt(k.low, quote),
            fmt(k.close, quote),
            fmt(k.volume, base),
            k.close_time,
            fmt(k.quote_volume, quote),
            k.trade_count,
        )
        for k in rows
    ]
    return Page(data=data, next_cursor=None)


@get("/api/v1/trades/{symbol:str}", tags=["market data"], summary="Recent public trades, newest first")
async def trades(
    symbol: FromPath[str], runtime: RuntimeDep, limit: FromQuery[int] = 100
) -> Page[PublicTradeResponse]:
    market = _market(runtime, symbol)
    rows = await runtime.read(runtime.queries.public_trades, symbol, clamp_limit(limit))
    base, quote = runtime.hub.assets[market.base_asset], runtime.hub.assets[market.quote_asset]
    data = [
        PublicTradeResponse(
            trade_id=t.trade_id,
            price=fmt(t.price, quote),
            quantity=fmt(t.quantity, base),
            taker_side=str(t.taker_side),
            time=t.time,
        )
        for t in rows
    ]
    return Page(data=data, next_cursor=None)


ROUTES = [markets, market, ticker, tickers, orderbook, klines, trades]
