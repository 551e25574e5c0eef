"""Cambist orders and fills in Binance's JSON shapes (binance-compat.md §2.7-2.8).

Numbers are plain decimal strings padded to the asset's scale (``present.fmt``); ids and
times are integers. No body here ever has a ``code`` key: ccxt would read the order as
rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cambist.binance.present import fmt
from cambist.binance.symbols import binance_symbol
from cambist.core.events import MarketView, OrderView, Trade
from cambist.core.types import Liquidity, OrderStatus, OrderType, SelfTradePrevention, Side
from cambist.store.queries import Fill

STATUS: dict[OrderStatus, str] = {
    OrderStatus.UNTRIGGERED: "NEW",
    OrderStatus.NEW: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.REJECTED: "REJECTED",
    OrderStatus.EXPIRED: "EXPIRED",
}
OPEN = frozenset({OrderStatus.UNTRIGGERED, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED})

STP_TO_BINANCE: dict[SelfTradePrevention, str] = {
    SelfTradePrevention.EXPIRE_TAKER: "EXPIRE_TAKER",
    SelfTradePrevention.EXPIRE_MAKER: "EXPIRE_MAKER",
    SelfTradePrevention.EXPIRE_BOTH: "EXPIRE_BOTH",
}


TYPE_NAMES: dict[str, str] = {
    "limit": "LIMIT",
    "market": "MARKET",
    "stop_market": "STOP_LOSS",
    "stop_limit": "STOP_LOSS_LIMIT",
    "take_profit_market": "TAKE_PROFIT",
    "take_profit_limit": "TAKE_PROFIT_LIMIT",
    "trailing_stop": "STOP_LOSS",  # with trailingDelta
}


def order_type(order: OrderView) -> str:
    if order.order_type is OrderType.LIMIT and order.post_only:
        return "LIMIT_MAKER"
    return TYPE_NAMES.get(order.order_type.value, order.order_type.value.upper())


def time_in_force(order: OrderView) -> str:
    """Binance reports GTC for MARKET and LIMIT_MAKER orders whatever ran underneath."""
    if order.order_type is OrderType.LIMIT and not order.post_only:
        return order.time_in_force.value
    return "GTC"


class Scales:
    """The scales one market's numbers are printed with."""

    def __init__(self, market: MarketView, assets: Mapping[str, int]) -> None:
        self.symbol = binance_symbol(market)
        self.base = assets[market.base_asset]
        self.quote = assets[market.quote_asset]
        self.assets = assets

    def fee(self, asset: str) -> int:
        return self.assets.get(asset, 8)


def order_body(order: OrderView, s: Scales) -> dict[str, Any]:
    """``GET /order``, ``/openOrders``, ``/allOrders``."""
    quantity = order.quantity if order.quantity is not None else order.filled_quantity
    return {
        "symbol": s.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id or "",
        "price": fmt(order.price or 0, s.quote),
        "origQty": fmt(quantity, s.base),
        "executedQty": fmt(order.filled_quantity, s.base),
        "cummulativeQuoteQty": fmt(order.quote_filled, s.quote),
        "status": STATUS[order.status],
        "timeInForce": time_in_force(order),
        "type": order_type(order),
        "side": "BUY" if order.side is Side.BUY else "SELL",
        # getattr: conditional orders (issue 6) bring ``stop_price``; others print zero.
        "stopPrice": fmt(order.stop_price or 0, s.quote),
        **_trailing(order),
        "icebergQty": fmt(order.iceberg_quantity or 0, s.base),
        "time": order.created_at,
        "updateTime": order.updated_at,
        "isWorking": order.status in OPEN and order.status is not OrderStatus.UNTRIGGERED,
        "workingTime": working_time(order),
        "origQuoteOrderQty": fmt(order.quote_quantity or 0, s.quote),
        "selfTradePreventionMode": STP_TO_BINANCE[order.self_trade_prevention],
    }


def ack_body(order: OrderView, s: Scales, transact_time: int) -> dict[str, Any]:
    """``POST /order`` with ``newOrderRespType=ACK``."""
    return {
        "symbol": s.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id or "",
        "transactTime": transact_time,
    }


def result_body(order: OrderView, s: Scales, transact_time: int) -> dict[str, Any]:
    """``POST /order`` with ``newOrderRespType=RESULT`` (FULL adds ``fills``)."""
    quantity = order.quantity if order.quantity is not None else order.filled_quantity
    return {
        **ack_body(order, s, transact_time),
        "price": fmt(order.price or 0, s.quote),
        "origQty": fmt(quantity, s.base),
        "executedQty": fmt(order.filled_quantity, s.base),
        "origQuoteOrderQty": fmt(order.quote_quantity or 0, s.quote),
        "cummulativeQuoteQty": fmt(order.quote_filled, s.quote),
        "status": STATUS[order.status],
        "timeInForce": time_in_force(order),
        "type": order_type(order),
        "side": "BUY" if order.side is Side.BUY else "SELL",
        # Binance says workingTime -1 for a stop that waits, and ccxt would take that as the
        # order's timestamp (binance-compat.md P2): leaving it out makes it transactTime.
        **({"workingTime": order.created_at} if order.status is not OrderStatus.UNTRIGGERED else {}),
        "selfTradePreventionMode": STP_TO_BINANCE[order.self_trade_prevention],
        **({"stopPrice": fmt(order.stop_price, s.quote)} if order.stop_price is not None else {}),
        **_trailing(order),
    }


def _trailing(order: OrderView) -> dict[str, Any]:
    """A trailing stop's distance in basis points, as Binance shows it."""
    return {} if order.trailing_ppm is None else {"trailingDelta": order.trailing_ppm // 100}


def working_time(order: OrderView) -> int:
    """When the order started working on the book; -1 while a stop waits untriggered, as on
    Binance (binance-compat.md P2)."""
    if order.status is OrderStatus.UNTRIGGERED:
        return -1
    return order.created_at if order.stop_price is None else order.updated_at


def full_body(order: OrderView, s: Scales, transact_time: int, trades: Iterable[Trade]) -> dict[str, Any]:
    return {**result_body(order, s, transact_time), "fills": fills_of(order.order_id, trades, s)}


def cancel_body(order: OrderView, s: Scales, transact_time: int, cancel_client_id: str) -> dict[str, Any]:
    """``DELETE /order`` and each entry of ``DELETE /openOrders``: ``clientOrderId`` is the
    cancel request's id and ``origClientOrderId`` the order's."""
    body = result_body(order, s, transact_time)
    body.pop("workingTime", None)
    return {
        "symbol": s.symbol,
        "origClientOrderId": order.client_order_id or "",
        **{k: v for k, v in body.items() if k != "symbol"},
        "clientOrderId": cancel_client_id,
    }


def fills_of(order_id: int, trades: Iterable[Trade], s: Scales) -> list[dict[str, Any]]:
    """The ``fills`` of a new order: its side of the trades its own command made."""
    fills = []
    for trade in trades:
        if trade.taker_order_id == order_id:
            fee, fee_asset = trade.taker_fee, trade.taker_fee_asset
        elif trade.maker_order_id == order_id:
            fee, fee_asset = trade.maker_fee, trade.maker_fee_asset
        else:
            continue
        fills.append(
            {
                "price": fmt(trade.price, s.quote),
                "qty": fmt(trade.quantity, s.base),
                "commission": fmt(fee, s.fee(fee_asset)),
                "commissionAsset": fee_asset,
                "tradeId": trade.trade_id,
            }
        )
    return fills


def my_trade_body(fill: Fill, s: Scales) -> dict[str, Any]:
    """One entry of ``GET /myTrades``."""
    return {
        "symbol": s.symbol,
        "id": fill.trade_id,
        "orderId": fill.order_id,
        "orderListId": -1,
        "price": fmt(fill.price, s.quote),
        "qty": fmt(fill.quantity, s.base),
        "quoteQty": fmt(fill.quote_quantity, s.quote),
        "commission": fmt(fill.fee, s.fee(fill.fee_asset)),
        "commissionAsset": fill.fee_asset,
        "time": fill.time,
        "isBuyer": fill.side is Side.BUY,
        "isMaker": fill.liquidity is Liquidity.MAKER,
        "isBestMatch": True,
    }
