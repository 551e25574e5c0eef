"""Enumerations and stable reject codes shared by the core, the engine and the API.

Values are the strings the public API uses, so a value can cross every layer unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"
    # Conditional orders: untriggered until a trade prints at or through ``stop_price``, then
    # a market or a limit order. A stop buys on a rise and sells on a fall; a take-profit
    # buys on a fall and sells on a rise.
    STOP_MARKET = "stop_market"
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT_MARKET = "take_profit_market"
    TAKE_PROFIT_LIMIT = "take_profit_limit"
    # A stop-market whose stop follows the price at a distance, only in the trader's favour:
    # a sell's stop trails below the highest trade since activation, a buy's above the lowest.
    TRAILING_STOP = "trailing_stop"


CONDITIONAL_TYPES = frozenset(
    {
        OrderType.STOP_MARKET,
        OrderType.STOP_LIMIT,
        OrderType.TAKE_PROFIT_MARKET,
        OrderType.TAKE_PROFIT_LIMIT,
        OrderType.TRAILING_STOP,
    }
)
# Types that carry a limit price once they act (a plain limit, or a triggered stop-limit).
PRICED_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT})


def triggers_on_rise(order_type: OrderType, side: Side) -> bool:
    """Whether a conditional order triggers when the price rises to its stop (else on a fall)."""
    is_stop = order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)
    return is_stop == (side is Side.BUY)


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTD = "GTD"  # good till a date: rests like GTC until ``expire_time``, then the engine expires it


RESTING_TIFS = frozenset({TimeInForce.GTC, TimeInForce.GTD})


class OrderStatus(StrEnum):
    UNTRIGGERED = "untriggered"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


OPEN_STATUSES = frozenset({OrderStatus.UNTRIGGERED, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED})


class SelfTradePrevention(StrEnum):
    """What happens when a taker would trade with a resting order of the same account."""

    EXPIRE_MAKER = "expire_maker"  # cancel the resting order (the default)
    EXPIRE_TAKER = "expire_taker"  # stop the incoming order
    EXPIRE_BOTH = "expire_both"


class MarketStatus(StrEnum):
    TRADING = "trading"
    HALTED = "halted"  # no new orders; cancels still work


class MarketType(StrEnum):
    SPOT = "spot"
    PERPETUAL = "perpetual"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class Bucket(StrEnum):
    """The two balances an account keeps per asset."""

    AVAILABLE = "available"
    LOCKED = "locked"


class RejectCode(StrEnum):
    """Why the core refused a command. Stable: the API exposes these as error codes."""

    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    UNKNOWN_ASSET = "UNKNOWN_ASSET"
    MARKET_HALTED = "MARKET_HALTED"
    INVALID_PRICE = "INVALID_PRICE"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_ORDER = "INVALID_ORDER"
    BELOW_MIN_QUANTITY = "BELOW_MIN_QUANTITY"
    BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    POST_ONLY_WOULD_TAKE = "POST_ONLY_WOULD_TAKE"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    INVALID_ASSET = "INVALID_ASSET"
    INVALID_MARKET = "INVALID_MARKET"
    ASSET_SCALE_LOCKED = "ASSET_SCALE_LOCKED"
    TOO_MANY_OPEN_ORDERS = "TOO_MANY_OPEN_ORDERS"
    ACCOUNT_NOT_ALLOWED = "ACCOUNT_NOT_ALLOWED"
    DUPLICATE_CREDIT_ID = "DUPLICATE_CREDIT_ID"
    STOP_WOULD_TRIGGER = "STOP_WOULD_TRIGGER"


# System accounts live below zero so they can never collide with user ids.
FEE_ACCOUNT = -1
EXTERNAL_ACCOUNT = -2  # counterpart of deposits and manual credits; its balance is negative
INSURANCE_ACCOUNT = -3  # reserved for futures
SYSTEM_ACCOUNTS = frozenset({FEE_ACCOUNT, EXTERNAL_ACCOUNT, INSURANCE_ACCOUNT})
