"""Cambist values in Binance's shapes (binance-compat.md §2): numbers as plain decimal strings,
the order types the facade accepts, and the public bodies (exchangeInfo symbols, depth,
trades, aggTrades, klines, tickers).

Every number is an integer count of an asset's smallest units until it is printed here, at
that asset's scale: prices and quote amounts at the quote asset's, quantities at the base's.
No body here has a ``code`` key (ccxt would read it as an error, §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cambist.core.events import MarketView, Trade
from cambist.core.numbers import MAX_UNITS, format_units
from cambist.core.types import MarketStatus, SelfTradePrevention, Side
from cambist.engine.engine import DepthSnapshot
from cambist.store.queries import Kline, TickerWindow

# Every order type the facade accepts, in the order Binance lists them. ccxt's create_order
# refuses a type missing here (binance-compat.md §2.1, P1), so exchangeInfo and POST /order
# both read this one list. Stop types come with issue 6.
ORDER_TYPES: tuple[str, ...] = (
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)

# Cambist's self-trade prevention modes in Binance's words (there is no "NONE": every
# Cambist market prevents self-trades one way or another).
STP_MODES: dict[SelfTradePrevention, str] = {
    SelfTradePrevention.EXPIRE_TAKER: "EXPIRE_TAKER",
    SelfTradePrevention.EXPIRE_MAKER: "EXPIRE_MAKER",
    SelfTradePrevention.EXPIRE_BOTH: "EXPIRE_BOTH",
}

DAY_MS = 86_400_000
MAX_NUM_ORDERS = 1_000  # cambist.core.exchange.MAX_OPEN_ORDERS_PER_ACCOUNT (one account, all markets)


def fmt(units: int, scale: int) -> str:
    """``units`` at ``scale`` decimals as a plain decimal string (no exponent), padded to
    ``scale`` decimals the way Binance prints numbers: ``fmt(150, 2) == "1.50"``."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    if scale <= 0:
        return f"{sign}{units * 10 ** (-scale)}"
    text = str(units).rjust(scale + 1, "0")
    return f"{sign}{text[:-scale]}.{text[-scale:]}"


def status(market: MarketView) -> str:
    return "TRADING" if market.status is MarketStatus.TRADING else "HALT"


def _largest_multiple(step: int) -> int:
    """The largest multiple of ``step`` the core accepts (amounts stay below ``MAX_UNITS``)."""
    return (MAX_UNITS - 1) // step * step


def symbol_info(market: MarketView, symbol: str, assets: Mapping[str, int]) -> dict[str, Any]:
    """One ``exchangeInfo.symbols[]`` entry (§2.1)."""
    base, quote = assets[market.base_asset], assets[market.quote_asset]
    max_qty = fmt(_largest_multiple(market.lot_size), base)
    return {
        "symbol": symbol,
        "status": status(market),
        "baseAsset": market.base_asset,
        "baseAssetPrecision": base,
        "quoteAsset": market.quote_asset,
        "quotePrecision": quote,
        "quoteAssetPrecision": quote,
        "baseCommissionPrecision": base,
        "quoteCommissionPrecision": quote,
        "orderTypes": list(ORDER_TYPES),
        "icebergAllowed": True,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(market.tick_size, quote),
                "maxPrice": fmt(_largest_multiple(market.tick_size), quote),
                "tickSize": fmt(market.tick_size, quote),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(market.min_quantity, base),
                "maxQty": max_qty,
                "stepSize": fmt(market.lot_size, base),
            },
            {
                # Market orders follow the same lot and minimum as limit orders.
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt(market.min_quantity, base),
                "maxQty": max_qty,
                "stepSize": fmt(market.lot_size, base),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": fmt(market.min_notional, quote),
                "applyMinToMarket": True,
                "maxNotional": fmt(MAX_UNITS - 1, quote),
                "applyMaxToMarket": False,
                "avgPriceMins": 0,  # checked against the order's own price, not an average
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": MAX_NUM_ORDERS},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": STP_MODES[market.self_trade_prevention],
        "allowedSelfTradePreventionModes": list(STP_MODES.values()),
    }


def depth(snapshot: DepthSnapshot, limit: int, base: int, quote: int) -> dict[str, Any]:
    """``GET /depth``: no ``T``/``E`` on spot (P3), ``lastUpdateId`` is the book's sequence."""
    return {
        "lastUpdateId": snapshot.sequence,
        "bids": [[fmt(p, quote), fmt(q, base)] for p, q in snapshot.bids[:limit]],
        "asks": [[fmt(p, quote), fmt(q, base)] for p, q in snapshot.asks[:limit]],
    }


def trade(t: Trade, base: int, quote: int) -> dict[str, Any]:
    """One ``GET /trades`` row."""
    return {
        "id": t.trade_id,
        "price": fmt(t.price, quote),
        "qty": fmt(t.quantity, base),
        "quoteQty": fmt(t.quote_quantity, quote),
        "time": t.time,
        "isBuyerMaker": t.taker_side is Side.SELL,
        "isBestMatch": True,
    }


def agg_trade(t: Trade, base: int, quote: int) -> dict[str, Any]:
    """One ``GET /aggTrades`` row: each trade is its own aggregate (``a == f == l``)."""
    return {
        "a": t.trade_id,
        "p": fmt(t.price, quote),
        "q": fmt(t.quantity, base),
        "f": t.trade_id,
        "l": t.trade_id,
        "T": t.time,
        "m": t.taker_side is Side.SELL,
        "M": True,
    }


def kline(k: Kline, base: int, quote: int) -> list[Any]:
    """One ``GET /klines`` row. The store keeps no taker-buy volumes: they are given as zero."""
    return [
        k.open_time,
        fmt(k.open, quote),
        fmt(k.high, quote),
        fmt(k.low, quote),
        fmt(k.close, quote),
        fmt(k.volume, base),
        k.close_time,
        fmt(k.quote_volume, quote),
        k.trade_count,
        fmt(0, base),  # taker buy base volume: not stored
        fmt(0, quote),  # taker buy quote volume: not stored
        "0",
    ]


def percent(change: int, base: int) -> str:
    """``change / base`` in percent with three decimals (Binance's form), truncated toward zero,
    from integers only."""
    if base == 0:
        return "0.000"
    thousandths = abs(change) * 100_000 // base
    sign = "-" if change < 0 and thousandths else ""
    return f"{sign}{thousandths // 1000}.{thousandths % 1000:03d}"


def book_ticker(symbol: str, snapshot: DepthSnapshot, base: int, quote: int) -> dict[str, Any]:
    """``GET /ticker/bookTicker``: best bid and ask; zeros for an empty side (as Binance)."""
    bid_price, bid_qty = snapshot.bids[0] if snapshot.bids else (0, 0)
    ask_price, ask_qty = snapshot.asks[0] if snapshot.asks else (0, 0)
    return {
        "symbol": symbol,
        "bidPrice": fmt(bid_price, quote),
        "bidQty": fmt(bid_qty, base),
        "askPrice": fmt(ask_price, quote),
        "askQty": fmt(ask_qty, base),
    }


def ticker_24hr(
    symbol: str,
    window: TickerWindow | None,
    last: Trade | None,
    first_id: int | None,
    snapshot: DepthSnapshot,
    base: int,
    quote: int,
    now: int,
    *,
    mini: bool = False,
) -> dict[str, Any]:
    """``GET /ticker/24hr`` (§2.2) over the rolling 24 h of 1m klines the native ticker uses.

    No ``time`` key (ccxt would take the ticker for a contract's). ``prevClosePrice`` is the
    window's first price: the last price before the window is not kept apart. With no trade in
    the window every price is the last trade's (zero if the market never traded), the volumes
    are zero and ``firstId``/``lastId`` are -1, as on Binance.
    """
    if window is None or last is None:
        price = last.price if last is not None else 0
        open_, high, low, close, volume, quote_volume, count = price, price, price, price, 0, 0, 0
        first, last_id = -1, -1
    else:
        open_, high, low, close = window.open, window.high, window.low, window.close
        volume, quote_volume, count = window.volume, window.quote_volume, window.trade_count
        first = first_id if first_id is not None else last.trade_id
        last_id = last.trade_id
    body: dict[str, Any] = {"symbol": symbol}
    if not mini:
        change = close - open_
        # quote units per whole base unit: quote_volume / (volume / 10**base)
        vwap = quote_volume * 10**base // volume if volume else 0
        bid_price, bid_qty = snapshot.bids[0] if snapshot.bids else (0, 0)
        ask_price, ask_qty = snapshot.asks[0] if snapshot.asks else (0, 0)
        body.update(
            {
                "priceChange": fmt(change, quote),
                "priceChangePercent": percent(change, open_),
                "weightedAvgPrice": fmt(vwap, quote),
                "prevClosePrice": fmt(open_, quote),
                "lastPrice": fmt(close, quote),
                "lastQty": fmt(last.quantity if last is not None else 0, base),
                "bidPrice": fmt(bid_price, quote),
                "bidQty": fmt(bid_qty, base),
                "askPrice": fmt(ask_price, quote),
                "askQty": fmt(ask_qty, base),
            }
        )
    else:
        body["lastPrice"] = fmt(close, quote)
    body.update(
        {
            "openPrice": fmt(open_, quote),
            "highPrice": fmt(high, quote),
            "lowPrice": fmt(low, quote),
            "volume": fmt(volume, base),
            "quoteVolume": fmt(quote_volume, quote),
            "openTime": now - DAY_MS,
            "closeTime": now,
            "firstId": first,
            "lastId": last_id,
            "count": count,
        }
    )
    return body


__all__ = [
    "MAX_NUM_ORDERS",
    "ORDER_TYPES",
    "STP_MODES",
    "agg_trade",
    "book_ticker",
    "depth",
    "fmt",
    "format_units",
    "kline",
    "percent",
    "status",
    "symbol_info",
    "ticker_24hr",
    "trade",
]
