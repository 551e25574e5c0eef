"""Request and response bodies of the native API (camelCase on the wire).

Requests forbid unknown fields so a typo (``quanity``) is an error instead of an order
with a default. Money is a string everywhere; ``money.py`` converts it with the asset scale.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class Request(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    pass


class Response(msgspec.Struct, rename="camel", frozen=True):
    pass


# ---------------------------------------------------------------- auth and account


class RegisterRequest(Request, frozen=True):
    email: str
    password: str


class RegisterResponse(Response, frozen=True):
    user_id: int


class LoginRequest(Request, frozen=True):
    email: str
    password: str
    otp: str | None = None


class RefreshRequest(Request, frozen=True):
    refresh_token: str


class LogoutRequest(Request, frozen=True):
    refresh_token: str | None = None


class TokenResponse(Response, frozen=True):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


class AccountResponse(Response, frozen=True):
    user_id: int
    email: str
    roles: list[str]
    status: str
    created_at: int
    permissions: list[str]
    api_key: str | None = None


class ApiKeyCreateRequest(Request, frozen=True):
    label: str
    permissions: list[str]
    ip_allowlist: list[str] | None = None
    otp: str | None = None


class ApiKeyResponse(Response, frozen=True):
    api_key: str
    label: str
    permissions: list[str]
    ip_allowlist: list[str]
    created_at: int
    secret: str | None = None  # only in the answer to the creation


class BalanceResponse(Response, frozen=True):
    asset: str
    available: str
    locked: str


# ---------------------------------------------------------------- trading

Side = Literal["buy", "sell"]
OrderTypeName = Literal[
    "limit", "market", "stop_market", "stop_limit", "take_profit_market", "take_profit_limit", "trailing_stop"
]
TimeInForceName = Literal["GTC", "IOC", "FOK", "GTD"]
StpName = Literal["expire_taker", "expire_maker", "expire_both"]


class PlaceOrderRequest(Request, frozen=True):
    symbol: str
    side: Side
    type: OrderTypeName
    quantity: str | None = None
    price: str | None = None
    quote_quantity: str | None = None
    time_in_force: TimeInForceName | None = None
    post_only: bool = False
    client_order_id: str | None = None
    self_trade_prevention: StpName | None = None
    stop_price: str | None = None  # stop and take-profit orders: the trigger price
    expire_time: int | None = None  # timeInForce GTD: when the order expires (ms since the epoch)
    # trailing_stop: the distance in the quote asset, or in percent of the price (0.1 to 20),
    # and the price at which trailing starts (at once when absent)
    trailing_offset: str | None = None
    trailing_percent: str | None = None
    activation_price: str | None = None
    iceberg_quantity: str | None = None  # a limit order showing only this much at a time
    reduce_only: bool = False  # margin and futures only (refused on spot markets)


class OcoRequest(Request, frozen=True):
    """A post-only limit order and a stop for one quantity (API.md, Trading)."""

    symbol: str
    side: Side
    quantity: str
    price: str
    stop_price: str
    stop_limit_price: str | None = None
    client_order_id: str | None = None  # of the limit order


class AmendOrderRequest(Request, frozen=True):
    """The new total quantity (what has filled included) and/or the new price."""

    quantity: str | None = None
    price: str | None = None


class FillResponse(Response, frozen=True):
    trade_id: int
    price: str
    quantity: str
    fee: str
    fee_asset: str
    liquidity: str
    time: int


class OrderResponse(Response, frozen=True):
    order_id: int
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    time_in_force: str
    post_only: bool
    self_trade_prevention: str
    status: str
    price: str | None
    stop_price: str | None
    quantity: str | None
    quote_quantity: str | None
    filled_quantity: str
    remaining_quantity: str | None
    average_price: str | None
    quote_filled: str
    fee: str
    fee_asset: str
    fills: list[FillResponse]
    created_at: int
    updated_at: int
    expire_time: int | None = None
    trailing_offset: str | None = None
    trailing_percent: str | None = None
    activation_price: str | None = None
    iceberg_quantity: str | None = None
    linked_order_id: int | None = None  # the other order of its OCO list


class OcoResponse(Response, frozen=True):
    list_id: int  # the limit order's id
    orders: list[OrderResponse]  # the limit order, then the stop


class AccountTradeResponse(Response, frozen=True):
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: str
    quantity: str
    quote_quantity: str
    fee: str
    fee_asset: str
    liquidity: str
    time: int


# ---------------------------------------------------------------- market data


class MarketResponse(Response, frozen=True):
    symbol: str
    base_asset: str
    quote_asset: str
    status: str
    tick_size: str
    lot_size: str
    min_quantity: str
    min_notional: str
    maker_fee: str
    taker_fee: str
    type: str
    base_scale: int
    quote_scale: int
    self_trade_prevention: str


class TickerResponse(Response, frozen=True):
    symbol: str
    last_price: str | None
    open_price: str | None
    high_price: str | None
    low_price: str | None
    volume: str
    quote_volume: str
    price_change: str | None
    price_change_percent: str | None
    best_bid: str | None
    best_ask: str | None
    count: int
    open_time: int
    close_time: int


class OrderBookResponse(Response, frozen=True):
    symbol: str
    sequence: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class PublicTradeResponse(Response, frozen=True):
    trade_id: int
    price: str
    quantity: str
    taker_side: str
    time: int


# ---------------------------------------------------------------- administration


class CreditRequest(Request, frozen=True):
    user_id: int
    asset: str
    amount: str
    reason: str
    credit_id: str | None = None


class CreditResponse(Response, frozen=True):
    credit_id: str
    user_id: int
    asset: str
    amount: str
    available: str
    locked: str


class AssetRequest(Request, frozen=True):
    asset: str
    scale: int


class AssetResponse(Response, frozen=True):
    asset: str
    scale: int


class MarketRequest(Request, frozen=True):
    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: str
    lot_size: str
    min_quantity: str
    min_notional: str
    maker_fee: str
    taker_fee: str
    status: Literal["trading", "halted"] = "trading"
    self_trade_prevention: StpName = "expire_maker"
