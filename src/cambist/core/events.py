"""What the core reports: immutable, past-tense records.

``Outcome`` answers one command (what the caller needs for its reply). ``Changes`` gathers
everything a batch of commands changed, which the engine writes in one transaction and then
publishes. All amounts are integer units.
"""

from __future__ import annotations

import msgspec

from cambist.core.types import (
    Bucket,
    MarketStatus,
    MarketType,
    OrderStatus,
    OrderType,
    RejectCode,
    SelfTradePrevention,
    Side,
    TimeInForce,
)


class AssetView(msgspec.Struct, frozen=True):
    asset: str
    scale: int


class MarketView(msgspec.Struct, frozen=True):
    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: int
    lot_size: int
    min_quantity: int
    min_notional: int
    maker_fee_ppm: int
    taker_fee_ppm: int
    status: MarketStatus
    self_trade_prevention: SelfTradePrevention
    market_type: MarketType


class OrderView(msgspec.Struct, frozen=True):
    """An order as of the end of the command that produced this view."""

    order_id: int
    account_id: int
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    self_trade_prevention: SelfTradePrevention
    client_order_id: str | None
    price: int | None
    quantity: int | None
    quote_quantity: int | None
    status: OrderStatus
    filled_quantity: int
    quote_filled: int
    fee: int
    fee_asset: str
    hold_asset: str
    hold_remaining: int
    priority: int  # sequence number at which the order took its place in the queue
    created_at: int
    updated_at: int
    created_seq: int
    updated_seq: int
    stop_price: int | None = None  # conditional orders (``OrderType.CONDITIONAL``) only
    # Among orders that took their place in the queue in the same command (``priority``), the
    # order they did: 0 for the command's new order, 1, 2... for orders re-queued by it
    # (amended, or triggered). Restores the exact queue (``exchange.queue_key``).
    queue_rank: int = 0
    expire_time: int | None = None  # GTD orders: when the engine expires it (ms)
    trailing_offset: int | None = None  # trailing stops (see PlaceOrder)
    trailing_ppm: int | None = None
    activation_price: int | None = None
    trail_extreme: int | None = None  # the best price since activation; None until then
    iceberg_quantity: int | None = None  # icebergs: the size of each shown slice
    shown_remaining: int | None = None  # icebergs: what is left of the slice on the book
    reduce_only: bool = False
    linked_order_id: int | None = None  # the other order of its OCO list


class Trade(msgspec.Struct, frozen=True):
    trade_id: int
    seq: int
    time: int
    symbol: str
    price: int
    quantity: int
    quote_quantity: int
    taker_side: Side
    maker_order_id: int
    taker_order_id: int
    maker_account_id: int
    taker_account_id: int
    maker_fee: int
    maker_fee_asset: str
    taker_fee: int
    taker_fee_asset: str

    @property
    def buyer_account_id(self) -> int:
        return self.taker_account_id if self.taker_side is Side.BUY else self.maker_account_id

    @property
    def seller_account_id(self) -> int:
        return self.maker_account_id if self.taker_side is Side.BUY else self.taker_account_id


class LedgerEntry(msgspec.Struct, frozen=True):
    """One leg of a double-entry posting; the legs of a posting sum to zero per asset."""

    posting_id: int
    seq: int
    time: int
    account_id: int
    asset: str
    bucket: Bucket
    delta: int
    kind: str  # credit | hold | release | trade | fee
    ref: str  # what caused it: order id, trade id or credit id


class BalanceView(msgspec.Struct, frozen=True):
    account_id: int
    asset: str
    available: int
    locked: int


class Outcome(msgspec.Struct, frozen=True):
    """The answer to one command. ``reject`` set means nothing changed."""

    seq: int
    time: int
    reject: RejectCode | None = None
    message: str = ""
    order: OrderView | None = None
    # Orders this command changed besides ``order`` (makers it filled, orders it canceled).
    orders: tuple[OrderView, ...] = ()
    trades: tuple[Trade, ...] = ()
    balances: tuple[BalanceView, ...] = ()


class Changes(msgspec.Struct):
    """Everything changed since the last ``take_changes``; written in one transaction."""

    last_seq: int
    last_time: int
    state_hash: str
    next_order_id: int
    next_trade_id: int
    next_posting_id: int
    assets: list[AssetView]
    markets: list[MarketView]
    orders: list[OrderView]  # latest state of every order touched, open or final
    trades: list[Trade]
    ledger: list[LedgerEntry]
    balances: list[BalanceView]
    # Markets whose resting book changed, for depth snapshots.
    books_changed: list[str]


class CoreSnapshot(msgspec.Struct):
    """The whole core state, enough to rebuild it exactly (``ExchangeCore.restore``).

    ``open_orders`` must be given in the order they were accepted into their books, i.e.
    sorted by ``priority`` (then ``order_id``); the restored queues follow that order.
    """

    last_seq: int
    last_time: int
    next_order_id: int
    next_trade_id: int
    next_posting_id: int
    assets: list[AssetView]
    markets: list[MarketView]
    balances: list[BalanceView]
    open_orders: list[OrderView]
    # Each market's last trade price: a new conditional order is checked against it. Derived
    # from the trades (the store reads the last one per market), so not part of the hash.
    last_prices: dict[str, int] = {}
