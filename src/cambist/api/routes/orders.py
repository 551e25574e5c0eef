"""Placing, reading and canceling orders."""

from __future__ import annotations

from typing import Annotated

from litestar import delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from cambist.api.deps import PrincipalDep, RuntimeDep
from cambist.api.errors import ApiError, bad_request, not_found, reject_error
from cambist.api.money import parse_optional
from cambist.api.pagination import INT64_MAX, Page, clamp_limit, parse_cursor
from cambist.api.presenters import PERCENT_SCALE, fills_from_rows, fills_from_trades, order_body
from cambist.api.schemas import AmendOrderRequest, OcoRequest, OcoResponse, OrderResponse, PlaceOrderRequest
from cambist.core.commands import AmendOrder, CancelAllOrders, CancelOrder, PlaceOco, PlaceOrder
from cambist.core.events import MarketView, OrderView
from cambist.core.types import PRICED_TYPES, OrderType, RejectCode, SelfTradePrevention, Side, TimeInForce
from cambist.store.queries import Fill

TRADE = {"permission": "trade"}
READ = {"permission": "read"}
SUPPORTED_TYPES = {
    "limit": OrderType.LIMIT,
    "market": OrderType.MARKET,
    "stop_market": OrderType.STOP_MARKET,
    "stop_limit": OrderType.STOP_LIMIT,
    "take_profit_market": OrderType.TAKE_PROFIT_MARKET,
    "take_profit_limit": OrderType.TAKE_PROFIT_LIMIT,
    "trailing_stop": OrderType.TRAILING_STOP,
}


def _market(runtime: RuntimeDep, symbol: str) -> MarketView:
    market = runtime.hub.markets.get(symbol)
    if market is None:
        raise bad_request("UNKNOWN_SYMBOL", f"unknown symbol {symbol}")
    return market


def _command(data: JSONBody[PlaceOrderRequest], principal: PrincipalDep, runtime: RuntimeDep) -> PlaceOrder:
    market = _market(runtime, data.symbol)
    order_type = SUPPORTED_TYPES.get(data.type)
    if order_type is None:
        raise bad_request("UNSUPPORTED_ORDER_TYPE", f"order type {data.type} is not available yet")
    base_scale = runtime.hub.assets[market.base_asset]
    quote_scale = runtime.hub.assets[market.quote_asset]
    return PlaceOrder(
        account_id=principal.user_id,
        symbol=data.symbol,
        side=Side(data.side),
        order_type=order_type,
        quantity=parse_optional(data.quantity, base_scale, "quantity", "INVALID_QUANTITY"),
        price=parse_optional(data.price, quote_scale, "price", "INVALID_PRICE"),
        quote_quantity=parse_optional(data.quote_quantity, quote_scale, "quoteQuantity", "INVALID_QUANTITY"),
        time_in_force=TimeInForce(data.time_in_force or "GTC"),
        post_only=data.post_only,
        client_order_id=data.client_order_id,
        self_trade_prevention=None
        if data.self_trade_prevention is None
        else SelfTradePrevention(data.self_trade_prevention),
        stop_price=parse_optional(data.stop_price, quote_scale, "stopPrice", "INVALID_PRICE"),
        expire_time=data.expire_time,
        trailing_offset=parse_optional(data.trailing_offset, quote_scale, "trailingOffset", "INVALID_PRICE"),
        trailing_ppm=parse_optional(data.trailing_percent, PERCENT_SCALE, "trailingPercent", "INVALID_ORDER"),
        activation_price=parse_optional(
            data.activation_price, quote_scale, "activationPrice", "INVALID_PRICE"
        ),
        iceberg_quantity=parse_optional(
            data.iceberg_quantity, base_scale, "icebergQuantity", "INVALID_QUANTITY"
        ),
        reduce_only=data.reduce_only,
    )


def _same_request(order: OrderView, command: PlaceOrder) -> bool:
    """Is a repeated clientOrderId the same order (idempotent retry) or a different one?"""
    same = (
        order.symbol == command.symbol
        and order.side == command.side
        and order.order_type == command.order_type
        and order.quantity == command.quantity
        and order.price == command.price
        and order.quote_quantity == command.quote_quantity
        and order.post_only == command.post_only
        and order.stop_price == command.stop_price
        and order.expire_time == command.expire_time
        and order.trailing_offset == command.trailing_offset
        and order.trailing_ppm == command.trailing_ppm
        and order.iceberg_quantity == command.iceberg_quantity
    )
    if command.order_type in PRICED_TYPES:
        same = same and order.time_in_force == command.time_in_force
    if command.self_trade_prevention is not None:
        same = same and order.self_trade_prevention == command.self_trade_prevention
    return same


def _body_with_fills(runtime: RuntimeDep, order: OrderView, rows: list[Fill]) -> OrderResponse:
    market = runtime.hub.markets[order.symbol]
    assets = runtime.hub.assets
    fills = fills_from_rows(rows, assets[market.base_asset], assets[market.quote_asset], assets)
    return order_body(order, market, assets, fills)


async def _order_with_fills(runtime: RuntimeDep, order: OrderView) -> OrderResponse:
    if order.filled_quantity == 0:
        # Nothing filled, so no fill rows exist: skip the store round trip. This is the
        # common cancel (a resting order that never traded) and most order lookups.
        return _body_with_fills(runtime, order, [])
    rows = await runtime.read(runtime.queries.order_fills, order.order_id)
    return _body_with_fills(runtime, order, rows)


@post("/api/v1/orders", status_code=201, tags=["orders"], summary="Place an order", opt=TRADE)
async def place_order(
    data: JSONBody[PlaceOrderRequest], principal: PrincipalDep, runtime: RuntimeDep
) -> OrderResponse:
    command = _command(data, principal, runtime)
    outcome = await runtime.execute(command)
    if outcome.reject is not None:
        if outcome.reject is RejectCode.DUPLICATE_CLIENT_ORDER_ID and command.client_order_id:
            first = await runtime.read(
                runtime.queries.get_order_by_client_id, principal.user_id, command.client_order_id
            )
            if first is not None and _same_request(first, command):
                return await _order_with_fills(runtime, first)  # a retry gets the first order back
            raise ApiError(
                409, "DUPLICATE_CLIENT_ORDER_ID", "clientOrderId was already used for a different order"
            )
        raise reject_error(outcome.reject, outcome.message)
    order = outcome.order
    assert order is not None
    market = runtime.hub.markets[order.symbol]
    assets = runtime.hub.assets
    fills = fills_from_trades(
        order.order_id,
        outcome.trades,
        assets[market.base_asset],
        assets[market.quote_asset],
        assets[order.fee_asset],
    )
    return order_body(order, market, assets, fills)


@get("/api/v1/orders", tags=["orders"], summary="List orders, or get one by clientOrderId", opt=READ)
async def list_orders(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    symbol: FromQuery[str | None] = None,
    status: FromQuery[str] = "all",
    limit: FromQuery[int] = 100,
    cursor: FromQuery[str | None] = None,
    client_order_id: Annotated[str | None, QueryParameter(name="clientOrderId")] = None,
) -> Page[OrderResponse] | OrderResponse:
    """With ``clientOrderId`` the answer is that one order (404 if none); otherwise a page."""
    if client_order_id is not None:
        order = await runtime.read(runtime.queries.get_order_by_client_id, principal.user_id, client_order_id)
        if order is None:
            raise not_found("ORDER_NOT_FOUND", "no order with this clientOrderId")
        return await _order_with_fills(runtime, order)
    if status not in ("open", "closed", "all"):
        raise bad_request("INVALID_STATUS", "status must be open, closed or all")
    if symbol is not None:
        _market(runtime, symbol)
    orders, next_cursor = await runtime.read(
        runtime.queries.list_orders,
        principal.user_id,
        symbol,
        status,
        clamp_limit(limit),
        parse_cursor(cursor),
    )
    # One query for the fills of the whole page, not one per order.
    filled_ids = [order.order_id for order in orders if order.filled_quantity]
    fills = await runtime.read(runtime.queries.fills_of_orders, filled_ids)
    data = [_body_with_fills(runtime, order, fills.get(order.order_id, [])) for order in orders]
    return Page(data=data, next_cursor=None if next_cursor is None else str(next_cursor))


def _check_order_id(order_id: int) -> None:
    """An id no order can have is simply not found (and never reaches the store)."""
    if not 1 <= order_id <= INT64_MAX:
        raise not_found("ORDER_NOT_FOUND", f"order {order_id} not found")


@get("/api/v1/orders/{order_id:int}", tags=["orders"], summary="Get one order", opt=READ)
async def get_order(order_id: FromPath[int], principal: PrincipalDep, runtime: RuntimeDep) -> OrderResponse:
    _check_order_id(order_id)
    order = await runtime.read(runtime.queries.get_order, principal.user_id, order_id)
    if order is None:
        raise not_found("ORDER_NOT_FOUND", f"order {order_id} not found")
    return await _order_with_fills(runtime, order)


@delete(
    "/api/v1/orders/{order_id:int}", status_code=200, tags=["orders"], summary="Cancel an order", opt=TRADE
)
async def cancel_order(
    order_id: FromPath[int], principal: PrincipalDep, runtime: RuntimeDep
) -> OrderResponse:
    _check_order_id(order_id)
    outcome = await runtime.execute(CancelOrder(account_id=principal.user_id, order_id=order_id))
    if outcome.reject is None and outcome.order is not None:
        return await _order_with_fills(runtime, outcome.order)
    # Not open: an order of the caller that already ended is answered with its final state.
    order = await runtime.read(runtime.queries.get_order, principal.user_id, order_id)
    if order is None:
        raise not_found("ORDER_NOT_FOUND", f"order {order_id} not found")
    return await _order_with_fills(runtime, order)


@post("/api/v1/orders/oco", status_code=201, tags=["orders"], summary="Place an OCO list", opt=TRADE)
async def place_oco(data: JSONBody[OcoRequest], principal: PrincipalDep, runtime: RuntimeDep) -> OcoResponse:
    """One-cancels-the-other: when the limit order fills, even in part, the stop expires; when
    the stop triggers, the limit order expires; canceling either cancels both."""
    market = _market(runtime, data.symbol)
    base_scale = runtime.hub.assets[market.base_asset]
    quote_scale = runtime.hub.assets[market.quote_asset]

    def required(text: str, scale: int, name: str, code: str) -> int:
        value = parse_optional(text, scale, name, code)
        assert value is not None  # the schema makes these fields mandatory
        return value

    command = PlaceOco(
        account_id=principal.user_id,
        symbol=data.symbol,
        side=Side(data.side),
        quantity=required(data.quantity, base_scale, "quantity", "INVALID_QUANTITY"),
        price=required(data.price, quote_scale, "price", "INVALID_PRICE"),
        stop_price=required(data.stop_price, quote_scale, "stopPrice", "INVALID_PRICE"),
        stop_limit_price=parse_optional(
            data.stop_limit_price, quote_scale, "stopLimitPrice", "INVALID_PRICE"
        ),
        client_order_id=data.client_order_id,
    )
    outcome = await runtime.execute(command)
    if outcome.reject is not None:
        raise reject_error(outcome.reject, outcome.message)
    assert outcome.order is not None
    legs = [outcome.order, *(o for o in outcome.orders if o.order_id == outcome.order.linked_order_id)]
    assets = runtime.hub.assets
    return OcoResponse(
        list_id=outcome.order.order_id, orders=[order_body(o, market, assets, []) for o in legs]
    )


@patch("/api/v1/orders/{order_id:int}", tags=["orders"], summary="Amend a resting order", opt=TRADE)
async def amend_order(
    order_id: FromPath[int], data: JSONBody[AmendOrderRequest], principal: PrincipalDep, runtime: RuntimeDep
) -> OrderResponse:
    """A smaller quantity keeps the order's place in the queue; a new price or a larger
    quantity moves it to the back and, at a price that crosses, trades first."""
    _check_order_id(order_id)
    if data.quantity is None and data.price is None:
        raise bad_request("INVALID_ORDER", "give the new quantity, the new price or both")
    order = await runtime.read(runtime.queries.get_order, principal.user_id, order_id)
    if order is None:
        raise not_found("ORDER_NOT_FOUND", f"order {order_id} not found")
    market = runtime.hub.markets[order.symbol]
    base_scale = runtime.hub.assets[market.base_asset]
    quote_scale = runtime.hub.assets[market.quote_asset]
    command = AmendOrder(
        account_id=principal.user_id,
        order_id=order_id,
        quantity=parse_optional(data.quantity, base_scale, "quantity", "INVALID_QUANTITY"),
        price=parse_optional(data.price, quote_scale, "price", "INVALID_PRICE"),
    )
    outcome = await runtime.execute(command)
    if outcome.reject is not None:
        raise reject_error(outcome.reject, outcome.message)
    amended = outcome.order
    assert amended is not None
    if amended.filled_quantity:
        return await _order_with_fills(runtime, amended)  # fills from before the amend too
    return order_body(amended, market, runtime.hub.assets, [])


@delete(
    "/api/v1/orders",
    status_code=200,
    tags=["orders"],
    summary="Cancel all open orders on a symbol",
    opt=TRADE,
)
async def cancel_all(
    symbol: FromQuery[str], principal: PrincipalDep, runtime: RuntimeDep
) -> Page[OrderResponse]:
    _market(runtime, symbol)
    outcome = await runtime.execute(CancelAllOrders(account_id=principal.user_id, symbol=symbol))
    if outcome.reject is not None:
        raise reject_error(outcome.reject, outcome.message)
    market = runtime.hub.markets[symbol]
    data = [order_body(order, market, runtime.hub.assets, []) for order in outcome.orders]
    return Page(data=data, next_cursor=None)


ROUTES = [place_order, place_oco, list_orders, get_order, amend_order, cancel_order, cancel_all]
