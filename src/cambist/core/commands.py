"""Commands: imperative, immutable requests to the core.

Every command is a tagged msgspec Struct so the engine can journal it as MessagePack and a
replay decodes exactly the same value. Amounts are integer units (see ``numbers``); the
gateway converts the API's decimal strings before it builds a command. The engine assigns
the sequence number and timestamp when it applies a command, they are not part of it.
"""

from __future__ import annotations

import msgspec

from cambist.core.types import (
    MarketStatus,
    MarketType,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)


class Command(msgspec.Struct, frozen=True, tag_field="kind", forbid_unknown_fields=True):
    """Base of every command."""


class AddAsset(Command, frozen=True, tag="add_asset"):
    """Create an asset, or change its scale while nobody holds it."""

    asset: str
    scale: int


class UpsertMarket(Command, frozen=True, tag="upsert_market"):
    """Create a market or change its parameters at runtime (base and quote never change).

    ``tick_size`` is in quote units per whole base unit, ``lot_size`` and ``min_quantity`` in
    base units, ``min_notional`` in quote units, fees in parts per million.
    """

    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: int
    lot_size: int
    min_quantity: int
    min_notional: int
    maker_fee_ppm: int
    taker_fee_ppm: int
    status: MarketStatus = MarketStatus.TRADING
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.EXPIRE_MAKER
    market_type: MarketType = MarketType.SPOT


class Credit(Command, frozen=True, tag="credit"):
    """A ledgered manual credit (support, tests, demo funding). ``credit_id`` is unique."""

    credit_id: str
    account_id: int
    asset: str
    amount: int
    reason: str


class PlaceOrder(Command, frozen=True, tag="place_order"):
    """Place a limit or market order.

    Limit: ``price`` and ``quantity``. Market: ``quantity``, or ``quote_quantity`` to spend
    (buy) or receive (sell) that much quote. ``self_trade_prevention`` None means the
    market's default.
    """

    account_id: int
    symbol: str
    side: Side
    order_type: OrderType
    quantity: int | None = None
    price: int | None = None
    quote_quantity: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    client_order_id: str | None = None
    self_trade_prevention: SelfTradePrevention | None = None
    stop_price: int | None = None  # conditional order types only
    expire_time: int | None = None  # GTD only: the engine time (ms) at which it expires
    # Trailing stops: the distance in quote units, or in parts per million of the price; and
    # the price at which the trailing starts (immediately when absent).
    trailing_offset: int | None = None
    trailing_ppm: int | None = None
    activation_price: int | None = None
    # Iceberg limit orders: the part shown on the book; the rest refills it, each refill
    # queuing at the back of its price level.
    iceberg_quantity: int | None = None
    # Only ever reduce a position: meaningful for margin and futures markets, refused on spot
    # (which has no positions) until those exist.
    reduce_only: bool = False


class CancelOrder(Command, frozen=True, tag="cancel_order"):
    account_id: int
    order_id: int


class CancelAllOrders(Command, frozen=True, tag="cancel_all_orders"):
    """Cancel every open order of an account on one market."""

    account_id: int
    symbol: str


class AmendOrder(Command, frozen=True, tag="amend_order"):
    """Change a resting order's quantity (the new total, filled part included) or price.

    Reducing the quantity keeps the order's place in the queue. A new price or a larger
    quantity moves it to the back, holds what it now needs, and at a price that crosses the
    book it trades first, like a new order (cancel-replace in one step, keeping its id).
    """

    account_id: int
    order_id: int
    quantity: int | None = None
    price: int | None = None


class PlaceOco(Command, frozen=True, tag="place_oco"):
    """One-cancels-the-other: a limit order (post-only) and a stop on the other side of the
    market, for one quantity held once. When the limit order fills, even in part, the stop is
    expired; when the stop triggers, the limit order is expired and its funds pass to the stop;
    canceling either cancels both. A sell OCO's limit is above its stop, a buy OCO's below.
    ``stop_limit_price`` makes the stop a stop-limit; a buy OCO needs one (a stop-market buy
    is sized by quote, and the list by quantity)."""

    account_id: int
    symbol: str
    side: Side
    quantity: int
    price: int
    stop_price: int
    stop_limit_price: int | None = None
    client_order_id: str | None = None  # of the limit order


class ExpireOrders(Command, frozen=True, tag="expire_orders"):
    """The engine's clock: expire every GTD order whose time has come by this command's time.

    The core reads no wall clock; the engine sends this when the earliest expiry has passed
    (``ExchangeCore.next_expiry``), so expiries are journaled and replay exactly.
    """


AnyCommand = (
    AddAsset
    | UpsertMarket
    | Credit
    | PlaceOrder
    | CancelOrder
    | CancelAllOrders
    | AmendOrder
    | ExpireOrders
    | PlaceOco
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyCommand)


def encode_command(command: Command) -> bytes:
    return _encoder.encode(command)


def decode_command(payload: bytes) -> AnyCommand:
    command: AnyCommand = _decoder.decode(payload)
    return command
