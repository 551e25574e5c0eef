"""Public ``/api/v3`` endpoints: ping, time, exchangeInfo, depth, trades, aggTrades, klines and
the tickers (binance-compat.md §1-2), over the services the native market-data routes use: the
hub (markets, asset scales, depth), the store's queries and the read pool.

Parameters are read by hand from the query string: Binance's names are case-sensitive, unknown
ones are ignored as Binance ignores them, and every defect is answered in Binance's words
(``{code, msg}``, status 400), never in the native error shape.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from litestar import Request, get

from cambist.api.deps import RuntimeDep
from cambist.api.runtime import Runtime
from cambist.binance import candles, errors, present, reads
from cambist.binance.context import market as market_of
from cambist.binance.context import symbols as symbol_map
from cambist.binance.errors import BinanceError
from cambist.core.events import MarketView, Trade
from cambist.core.types import MarketType
from cambist.marketdata.ticker import TickerCache
from cambist.store.models_trading import KLINE_INTERVALS_MS
from cambist.store.queries import TickerWindow

INT64_MAX = 2**63 - 1
DEPTH_DEFAULT, DEPTH_MAX = 100, 5000
TRADES_DEFAULT, TRADES_MAX = 500, 1000
KLINES_DEFAULT, KLINES_MAX = 500, 1000
AGG_TRADES_WINDOW_MS = 3_600_000  # Binance: at most one hour between startTime and endTime
DEPTH_CACHE_MAX = 256

# Binance's kline intervals. The store keeps those in KLINE_INTERVALS_MS; the others are
# aggregated from them in the read (candles.SOURCES), except 1s (-1120): the store keeps no
# per-second buckets. (The stream hub builds @kline_1s from live trades; REST cannot.)
BINANCE_INTERVALS = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M",
)  # fmt: skip
INTERVALS = tuple(i for i in BINANCE_INTERVALS if i in KLINE_INTERVALS_MS or i in candles.SOURCES)

Query = Request[Any, Any, Any]
TickerInputs = tuple[TickerWindow | None, int | None, Trade | None]

_TICKERS_ATTRIBUTE = "_binance_ticker_cache"
_DEPTH_ATTRIBUTE = "_binance_depth_cache"


# -- parameters ------------------------------------------------------------------------------


def _param(request: Query, name: str) -> str | None:
    value: str | None = request.query_params.get(name)
    return value


def _int(request: Query, name: str, *, required: bool = False) -> int | None:
    """An integer parameter: -1102 when mandatory and missing, -1105 when sent empty, -1100
    when not digits, -1130 when beyond a long."""
    text = _param(request, name)
    if text is None:
        if required:
            raise errors.mandatory(name)
        return None
    if text == "":
        if required:
            raise errors.mandatory(name)
        raise BinanceError(errors.PARAM_EMPTY, f"Parameter '{name}' was empty.")
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise BinanceError(
            errors.ILLEGAL_CHARS,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    value = int(text)
    if value > INT64_MAX:
        raise errors.invalid(name)
    return value


def _limit(request: Query, default: int, maximum: int) -> int:
    """``limit``: below 1 is invalid; above the maximum is served as the maximum (ccxt passes
    its callers' limits through unclamped, P5)."""
    value = _int(request, "limit")
    if value is None:
        return default
    if value < 1:
        raise errors.invalid("limit")
    return min(value, maximum)


def _times(request: Query) -> tuple[int | None, int | None]:
    start, end = _int(request, "startTime"), _int(request, "endTime")
    if start is not None and end is not None and start > end:
        raise BinanceError(-1023, "Start time is greater than end time.")
    return start, end


_SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'


def _symbol_list(text: str) -> list[str]:
    """``symbols=["BTCUSDT","ETHUSDT"]`` (compact JSON, as ccxt sends it)."""
    try:
        names = json.loads(text)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise BinanceError(
            errors.ILLEGAL_CHARS,
            f"Illegal characters found in parameter 'symbols'; legal range is '{_SYMBOLS_RANGE}'.",
        )
    if not names:
        raise errors.invalid("symbols")
    return names


def _markets(runtime: Runtime, request: Query) -> list[MarketView] | None:
    """The markets named by ``symbol`` or ``symbols``; None when neither was sent (all)."""
    symbol, many = _param(request, "symbol"), _param(request, "symbols")
    if symbol is not None and many is not None:
        raise BinanceError(-1128, "Combination of optional parameters invalid.")
    if symbol is not None:
        return [market_of(runtime, symbol)]
    if many is not None:
        chosen: dict[str, MarketView] = {}
        for name in _symbol_list(many):
            view = market_of(runtime, name)
            chosen.setdefault(view.symbol, view)
        return list(chosen.values())
    return None


def _listed(runtime: Runtime) -> list[MarketView]:
    """Every spot market reachable by a Binance symbol, in Binance-symbol order."""
    markets = runtime.hub.markets
    listed = (markets[name] for _, name in sorted(symbol_map(runtime).all().items()))
    return [m for m in listed if m.market_type is MarketType.SPOT]


def _scales(runtime: Runtime, market: MarketView) -> tuple[int, int]:
    assets = runtime.hub.assets
    return assets[market.base_asset], assets[market.quote_asset]


def _name(runtime: Runtime, market: MarketView) -> str:
    return symbol_map(runtime).binance(market.symbol)


def _now() -> int:
    return time.time_ns() // 1_000_000


# -- general ---------------------------------------------------------------------------------


@get("/ping", summary="Test connectivity")
async def ping() -> dict[str, Any]:
    return {}


@get("/time", summary="Server time")
async def server_time() -> dict[str, Any]:
    return {"serverTime": _now()}


@get("/exchangeInfo", summary="Trading rules and symbols")
async def exchange_info(request: Query, runtime: RuntimeDep) -> dict[str, Any]:
    chosen = _markets(runtime, request)
    markets = _listed(runtime) if chosen is None else chosen
    assets = runtime.hub.assets
    return {
        "timezone": "UTC",
        "serverTime": _now(),
        # Cambist enforces no request-weight or order-rate limits of Binance's kind: none listed.
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": [present.symbol_info(m, _name(runtime, m), assets) for m in markets],
    }


# -- order book and trades -------------------------------------------------------------------


@get("/depth", summary="Order book")
async def depth(request: Query, runtime: RuntimeDep) -> dict[str, Any]:
    market = market_of(runtime, _param(request, "symbol"))
    limit = _limit(request, DEPTH_DEFAULT, DEPTH_MAX)
    snapshot = runtime.hub.depth(market.symbol)
    base, quote = _scales(runtime, market)
    # The book changes only at a commit: print each (snapshot, limit) once (see the native
    # orderbook route: formatting dominated the server's CPU under many readers).
    cache: dict[tuple[str, int, int, int, int], dict[str, Any]] | None = getattr(
        runtime, _DEPTH_ATTRIBUTE, None
    )
    if cache is None:
        cache = {}
        setattr(runtime, _DEPTH_ATTRIBUTE, cache)
    key = (market.symbol, snapshot.sequence, limit, base, quote)
    body = cache.get(key)
    if body is None:
        if len(cache) >= DEPTH_CACHE_MAX:
            cache.clear()  # bounded; stale sequences are never asked for again
        body = cache[key] = present.depth(snapshot, limit, base, quote)
    return body


@get("/trades", summary="Recent trades, oldest first")
async def trades(request: Query, runtime: RuntimeDep) -> list[dict[str, Any]]:
    market = market_of(runtime, _param(request, "symbol"))
    limit = _limit(request, TRADES_DEFAULT, TRADES_MAX)
    rows = await runtime.read(runtime.queries.public_trades, market.symbol, limit)
    base, quote = _scales(runtime, market)
    return [present.trade(t, base, quote) for t in reversed(rows)]


@get("/aggTrades", summary="Aggregate trades (one per trade), oldest first")
async def agg_trades(request: Query, runtime: RuntimeDep) -> list[dict[str, Any]]:
    market = market_of(runtime, _param(request, "symbol"))
    limit = _limit(request, TRADES_DEFAULT, TRADES_MAX)
    from_id = _int(request, "fromId")
    start, end = _times(request)
    if start is not None and end is not None and end - start > AGG_TRADES_WINDOW_MS:
        raise BinanceError(-1127, "More than 1 hours between startTime and endTime.")
    if from_id is None and start is None:
        rows = await runtime.read(reads.recent_trades, runtime.db, market.symbol, limit, end)
    else:
        rows = await runtime.read(_trades_after, runtime, market.symbol, limit, from_id, start, end)
    base, quote = _scales(runtime, market)
    return [present.agg_trade(t, base, quote) for t in rows]


def _trades_after(
    runtime: Runtime, symbol: str, limit: int, from_id: int | None, start: int | None, end: int | None
) -> list[Trade]:
    return reads.trades_after(runtime.db, symbol, limit, from_id=from_id, start_time=start, end_time=end)


# -- klines ----------------------------------------------------------------------------------

_UTC_OFFSETS = frozenset({"0", "+0", "-0", "00:00", "+00:00", "-00:00", "0:00", "+0:00"})


@get("/klines", summary="Candlesticks, oldest first")
async def klines(request: Query, runtime: RuntimeDep) -> list[list[Any]]:
    market = market_of(runtime, _param(request, "symbol"))
    interval = _param(request, "interval")
    if not interval:
        raise errors.mandatory("interval")
    if interval not in INTERVALS:
        raise errors.error(errors.BAD_INTERVAL)
    start, end = _times(request)
    limit = _limit(request, KLINES_DEFAULT, KLINES_MAX)
    zone = _param(request, "timeZone")
    if zone is not None and zone not in _UTC_OFFSETS:
        raise errors.invalid("timeZone")  # candles are kept in UTC only
    if interval in KLINE_INTERVALS_MS:
        rows = await runtime.read(runtime.queries.klines, market.symbol, interval, start, end, limit)
    else:
        rows = await runtime.read(candles.klines, runtime.db, market.symbol, interval, start, end, limit)
    base, quote = _scales(runtime, market)
    return [present.kline(k, base, quote) for k in rows]


# -- tickers ---------------------------------------------------------------------------------


def _ticker_cache(runtime: Runtime) -> TickerCache[TickerInputs]:
    cache: TickerCache[TickerInputs] | None = getattr(runtime, _TICKERS_ATTRIBUTE, None)
    if cache is None:
        cache = TickerCache()
        setattr(runtime, _TICKERS_ATTRIBUTE, cache)
    return cache


def _ticker_reads(runtime: Runtime, symbol: str, now: int) -> TickerInputs:
    window = runtime.queries.ticker_window(symbol, now)
    # firstId: the first trade of the window's first bucket (none to look for without a window)
    since = window.open_time if window is not None else None
    first_id, last = reads.window_trades(runtime.db, symbol, since)
    return window, first_id, last


async def _ticker_inputs(runtime: Runtime, market: MarketView, now: int) -> TickerInputs:
    """The store's part of a ticker, reused until a trade prints or a second passes (the
    book's part is read live from the hub, so the depth sequence is not part of the key)."""
    cache = _ticker_cache(runtime)
    version = runtime.hub.trade_version(market.symbol)
    inputs = cache.get(market.symbol, version, 0, now)
    if inputs is None:
        inputs = await runtime.read(_ticker_reads, runtime, market.symbol, now)
        cache.put(market.symbol, version, 0, now, inputs)
    return inputs


async def _each(runtime: Runtime, markets: list[MarketView], now: int) -> list[TickerInputs]:
    return list(await asyncio.gather(*(_ticker_inputs(runtime, m, now) for m in markets)))


def _one_or_many(request: Query, bodies: list[dict[str, Any]]) -> Any:
    """An object when ``symbol`` was sent, an array otherwise (ccxt's fetch_tickers needs one)."""
    return bodies[0] if _param(request, "symbol") is not None else bodies


@get("/ticker/24hr", summary="24 h rolling tickers")
async def ticker_24hr(request: Query, runtime: RuntimeDep) -> Any:
    chosen = _markets(runtime, request)
    kind = _param(request, "type")
    if kind is not None and kind not in ("FULL", "MINI"):
        raise errors.invalid("type")
    markets = _listed(runtime) if chosen is None else chosen
    now = _now()
    bodies = []
    for market, (window, first_id, last) in zip(markets, await _each(runtime, markets, now), strict=True):
        base, quote = _scales(runtime, market)
        snapshot = runtime.hub.depth(market.symbol)
        bodies.append(
            present.ticker_24hr(
                _name(runtime, market),
                window,
                last,
                first_id,
                snapshot,
                base,
                quote,
                now,
                mini=kind == "MINI",
            )
        )
    return _one_or_many(request, bodies)


@get("/ticker/price", summary="Last prices")
async def ticker_price(request: Query, runtime: RuntimeDep) -> Any:
    chosen = _markets(runtime, request)
    markets = _listed(runtime) if chosen is None else chosen
    now = _now()
    bodies = []
    for market, (_, _, last) in zip(markets, await _each(runtime, markets, now), strict=True):
        _, quote = _scales(runtime, market)
        price = last.price if last is not None else 0
        bodies.append({"symbol": _name(runtime, market), "price": present.fmt(price, quote)})
    return _one_or_many(request, bodies)


@get("/ticker/bookTicker", summary="Best bid and ask")
async def book_ticker(request: Query, runtime: RuntimeDep) -> Any:
    chosen = _markets(runtime, request)
    markets = _listed(runtime) if chosen is None else chosen
    bodies = []
    for market in markets:
        base, quote = _scales(runtime, market)
        snapshot = runtime.hub.depth(market.symbol)
        bodies.append(present.book_ticker(_name(runtime, market), snapshot, base, quote))
    return _one_or_many(request, bodies)


ROUTES: list[Any] = [
    ping,
    server_time,
    exchange_info,
    depth,
    trades,
    agg_trades,
    klines,
    ticker_24hr,
    ticker_price,
    book_ticker,
]
