"""Signed ``/api/v3`` endpoints: account, order, openOrders, allOrders, myTrades and the
listenKey user-data stream (binance-compat.md §1-3).

Every endpoint authenticates first (``signing``), then reads its parameters from the query
and form body together, validates them the Binance way (code and text), and runs the same
commands and store reads as the native API: no business rule lives here. Amounts are parsed
into integer units with the core's ``parse_units`` once Binance's own checks (pattern,
precision) have passed; the core stays the authority on tick, lot and notional, and its
rejections are translated by ``errors.from_reject``.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from litestar import Request, Response, delete, get, post, put

from cambist.accounts.permissions import Permission
from cambist.api.runtime import Runtime
from cambist.binance import context, errors, signing
from cambist.binance.orders_view import (
    OPEN,
    Scales,
    ack_body,
    cancel_body,
    full_body,
    my_trade_body,
    order_body,
    result_body,
)
from cambist.binance.present import ORDER_TYPES, fmt
from cambist.binance.signing import Signed, parse_int
from cambist.core.commands import CancelAllOrders, CancelOrder, PlaceOrder
from cambist.core.events import MarketView, OrderView
from cambist.core.numbers import POW10, DecimalFormatError, parse_units
from cambist.core.types import MarketStatus, OrderType, SelfTradePrevention, Side, TimeInForce
from cambist.store.queries import MAX_LIMIT, Fill

T = TypeVar("T")
Req = Request[Any, Any, Any]

INT64_MAX = 2**63 - 1
LIST_LIMIT_DEFAULT = 500
SCAN_ROWS_MAX = 20_000  # newest-first pages read at most to answer one allOrders/myTrades call
DECIMAL_PATTERN = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
DECIMAL_RE = re.compile(DECIMAL_PATTERN)
CLIENT_ID_PATTERN = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
CLIENT_ID_RE = re.compile(CLIENT_ID_PATTERN)
CLIENT_ID_ALPHABET = string.ascii_letters + string.digits
TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
RESPONSE_TYPES = ("ACK", "RESULT", "FULL")
STP_FROM_BINANCE: dict[str, SelfTradePrevention | None] = {
    "NONE": None,  # Cambist always prevents self-trades: NONE means the market's default
    "EXPIRE_TAKER": SelfTradePrevention.EXPIRE_TAKER,
    "EXPIRE_MAKER": SelfTradePrevention.EXPIRE_MAKER,
    "EXPIRE_BOTH": SelfTradePrevention.EXPIRE_BOTH,
}
BAD_PRECISION_MSG = "Precision is over the maximum defined for this asset."
ORDER_ID_OR_CLIENT_ID = "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"


def _json(content: Any) -> Response[Any]:
    return Response(content, status_code=200, media_type="application/json")


def _runtime(request: Req) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _new_client_id() -> str:
    """What Binance makes up when a client sends no id: 22 letters and digits."""
    return "".join(secrets.choice(CLIENT_ID_ALPHABET) for _ in range(22))


# -- parameters ----------------------------------------------------------------------------------


def _text(params: dict[str, str], name: str) -> str | None:
    value = params.get(name)
    return value if value else None


def _amount(params: dict[str, str], name: str, scale: int, filter_name: str) -> int | None:
    """A decimal parameter in integer units: -1100 if not a plain decimal, -1111 if it has
    more significant decimals than the asset, ``Filter failure`` if zero."""
    value = _text(params, name)
    if value is None:
        return None
    if not DECIMAL_RE.fullmatch(value):
        raise signing.illegal(name, DECIMAL_PATTERN)
    whole, _, fraction = value.partition(".")
    fraction = fraction.rstrip("0")  # "0.00100000" is 0.001 at any scale
    if len(fraction) > scale:
        raise errors.BinanceError(errors.BAD_PRECISION, BAD_PRECISION_MSG)
    try:
        units = parse_units(f"{whole}.{fraction}" if fraction else whole, scale)
    except DecimalFormatError:
        raise errors.invalid(name) from None
    if units == 0:
        raise errors.filter_failure(filter_name)
    return units


def _limit(params: dict[str, str]) -> int:
    limit = parse_int(params, "limit")
    if limit is None:
        return LIST_LIMIT_DEFAULT
    return max(1, min(limit, MAX_LIMIT))


def _order_id(params: dict[str, str], name: str = "orderId") -> int | None:
    return parse_int(params, name)


def _scales(runtime: Runtime, market: MarketView) -> Scales:
    return Scales(market, runtime.hub.assets)


def _scales_of(runtime: Runtime, symbol: str) -> Scales:
    return _scales(runtime, runtime.hub.markets[symbol])


# -- placing orders ------------------------------------------------------------------------------


class NewOrder:
    """A validated ``POST /order``: the command and how to answer."""

    def __init__(self, command: PlaceOrder, market: MarketView, response_type: str) -> None:
        self.command = command
        self.market = market
        self.response_type = response_type


# Binance's conditional order types; the plain ones (LIMIT, LIMIT_MAKER, MARKET) map to None.
CONDITIONAL_KINDS: dict[str, OrderType] = {
    "STOP_LOSS": OrderType.STOP_MARKET,
    "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
    "TAKE_PROFIT": OrderType.TAKE_PROFIT_MARKET,
    "TAKE_PROFIT_LIMIT": OrderType.TAKE_PROFIT_LIMIT,
}


def _new_order(runtime: Runtime, signed: Signed) -> NewOrder:
    params = signed.params
    market = context.market(runtime, params.get("symbol"))
    side_text = _text(params, "side")
    if side_text is None:
        raise errors.mandatory("side")
    if side_text not in ("BUY", "SELL"):
        raise errors.error(errors.INVALID_SIDE)
    kind = _text(params, "type")
    if kind is None:
        raise errors.mandatory("type")
    if kind not in ORDER_TYPES:
        raise errors.error(errors.INVALID_ORDER_TYPE)
    for unsupported in ("strategyId", "strategyType"):
        if _text(params, unsupported) is not None:
            raise errors.not_required(unsupported)
    conditional = CONDITIONAL_KINDS.get(kind)
    trailing_bips = _trailing_delta(params, kind)
    base_scale = runtime.hub.assets[market.base_asset]
    quote_scale = runtime.hub.assets[market.quote_asset]
    quantity = _amount(params, "quantity", base_scale, "LOT_SIZE")
    quote_quantity = _amount(params, "quoteOrderQty", quote_scale, "NOTIONAL")
    price = _amount(params, "price", quote_scale, "PRICE_FILTER")
    stop_price = _amount(params, "stopPrice", quote_scale, "PRICE_FILTER")
    if conditional is None and stop_price is not None:
        raise errors.not_required("stopPrice")
    if conditional is not None and stop_price is None and trailing_bips is None:
        raise errors.mandatory("stopPrice")
    activation_price = None
    if trailing_bips is not None:
        # Binance's trailing stop: STOP_LOSS with trailingDelta (basis points); a stopPrice
        # there is where the trailing starts.
        conditional, activation_price, stop_price = OrderType.TRAILING_STOP, stop_price, None
    tif_text = _text(params, "timeInForce")
    time_in_force = TimeInForce.GTC
    post_only = False
    if kind in ("MARKET", "STOP_LOSS", "TAKE_PROFIT"):
        order_type = conditional or OrderType.MARKET
        if price is not None:
            raise errors.not_required("price")
        if tif_text is not None:
            raise errors.not_required("timeInForce")
        if quantity is None and quote_quantity is None:
            raise errors.BinanceError(
                errors.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
                "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
            )
        if quantity is not None and quote_quantity is not None:
            raise errors.not_required("quoteOrderQty")
    else:
        order_type = conditional or OrderType.LIMIT
        if quote_quantity is not None:
            raise errors.not_required("quoteOrderQty")
        if kind != "LIMIT_MAKER":
            if tif_text is None:
                raise errors.mandatory("timeInForce")
            found = TIME_IN_FORCE.get(tif_text)
            if found is None:
                raise errors.error(errors.INVALID_TIF)
            time_in_force = found
        else:  # LIMIT_MAKER: Binance's post-only, which takes no timeInForce
            if tif_text is not None:
                raise errors.not_required("timeInForce")
            post_only = True
        if quantity is None:
            raise errors.mandatory("quantity")
        if price is None:
            raise errors.mandatory("price")
    client_order_id = _text(params, "newClientOrderId")
    if client_order_id is None:
        client_order_id = _new_client_id()
    elif not CLIENT_ID_RE.fullmatch(client_order_id):
        raise signing.illegal("newClientOrderId", CLIENT_ID_PATTERN)
    response_type = _text(params, "newOrderRespType") or "FULL"
    if response_type not in RESPONSE_TYPES:
        raise errors.invalid("newOrderRespType")
    stp_text = _text(params, "selfTradePreventionMode")
    if stp_text is not None and stp_text not in STP_FROM_BINANCE:
        raise errors.invalid("selfTradePreventionMode")
    command = PlaceOrder(
        account_id=signed.user_id,
        symbol=market.symbol,
        side=Side.BUY if side_text == "BUY" else Side.SELL,
        order_type=order_type,
        quantity=quantity,
        price=price,
        quote_quantity=quote_quantity,
        time_in_force=time_in_force,
        post_only=post_only,
        client_order_id=client_order_id,
        self_trade_prevention=None if stp_text is None else STP_FROM_BINANCE[stp_text],
        stop_price=stop_price,
        iceberg_quantity=_amount(params, "icebergQty", base_scale, "LOT_SIZE"),
        trailing_ppm=None if trailing_bips is None else trailing_bips * 100,
        activation_price=activation_price,
    )
    _check_filters(command, market, base_scale)
    return NewOrder(command, market, response_type)


TRAILING_DELTA_MIN, TRAILING_DELTA_MAX = 10, 2000  # basis points, as Binance allows


def _trailing_delta(params: Any, kind: str) -> int | None:
    """``trailingDelta`` in basis points, taken on STOP_LOSS (Cambist's trailing stop is a
    stop-market); on any other type it is a parameter sent when not required."""
    text = _text(params, "trailingDelta")
    if text is None:
        return None
    if kind != "STOP_LOSS":
        raise errors.not_required("trailingDelta")
    if not text.isdigit() or not TRAILING_DELTA_MIN <= int(text) <= TRAILING_DELTA_MAX:
        raise errors.BinanceError(-1013, "Filter failure: TRAILING_DELTA")
    return int(text)


def _check_filters(command: PlaceOrder, market: MarketView, base_scale: int) -> None:
    """The market's filters, checked here so ``/order/test`` answers what ``/order`` would;
    the core checks them again (and is the authority) when the order is placed."""
    if market.status is not MarketStatus.TRADING:
        raise errors.BinanceError(-1013, errors.MARKET_CLOSED)
    for price in (command.price, command.stop_price, command.activation_price):
        if price is not None and price % market.tick_size:
            raise errors.filter_failure("PRICE_FILTER")
    if command.quantity is not None and (
        command.quantity % market.lot_size or command.quantity < market.min_quantity
    ):
        raise errors.filter_failure("LOT_SIZE")
    if command.price is not None and command.quantity is not None:
        notional = -(-command.price * command.quantity // POW10[base_scale])
        if notional < market.min_notional:
            raise errors.filter_failure("NOTIONAL")
    if command.quote_quantity is not None and command.quote_quantity < market.min_notional:
        raise errors.filter_failure("NOTIONAL")
    shown = command.iceberg_quantity
    if shown is not None and (
        shown % market.lot_size or shown < market.min_quantity or shown >= (command.quantity or 0)
    ):
        raise errors.filter_failure("LOT_SIZE")


@post("/order", status_code=200, summary="New order (signed, TRADE)")
async def new_order(request: Req) -> Response[Any]:
    signed = await signing.authenticate(request, Permission.TRADE)
    runtime = _runtime(request)
    order = _new_order(runtime, signed)
    outcome = await runtime.execute(order.command)
    if outcome.reject is not None:
        raise errors.from_reject(outcome.reject)
    placed: OrderView = outcome.order
    scales = _scales(runtime, order.market)
    if order.response_type == "ACK":
        return _json(ack_body(placed, scales, outcome.time))
    if order.response_type == "RESULT":
        return _json(result_body(placed, scales, outcome.time))
    return _json(full_body(placed, scales, outcome.time, outcome.trades))


@post("/order/test", status_code=200, summary="Test new order (signed, TRADE): validates, places nothing")
async def test_order(request: Req) -> Response[Any]:
    signed = await signing.authenticate(request, Permission.TRADE)
    _new_order(_runtime(request), signed)
    return _json({})


# -- reading and canceling orders ----------------------------------------------------------------


async def _find_order(runtime: Runtime, signed: Signed, market: MarketView) -> OrderView | None:
    """The caller's order named by ``orderId`` or ``origClientOrderId`` on ``market``."""
    params = signed.params
    order_id = _order_id(params)
    client_id = _text(params, "origClientOrderId")
    if order_id is None and client_id is None:
        raise errors.BinanceError(errors.MANDATORY_PARAM_EMPTY_OR_MALFORMED, ORDER_ID_OR_CLIENT_ID)
    order: OrderView | None
    if order_id is not None:
        if not 1 <= order_id <= INT64_MAX:
            return None
        order = await runtime.read(runtime.queries.get_order, signed.user_id, order_id)
        if order is not None and client_id is not None and order.client_order_id != client_id:
            return None
    else:
        # The engine never lets an account use a clientOrderId twice: at most one order has it.
        order = await runtime.read(runtime.queries.get_order_by_client_id, signed.user_id, client_id)
    if order is None or order.symbol != market.symbol:
        return None
    return order


async def _open_orders(runtime: Runtime, user_id: int, symbol: str | None) -> list[OrderView]:
    """Every open order (an account holds at most 1000, one page), oldest first."""
    orders, _ = await runtime.read(runtime.queries.list_orders, user_id, symbol, "open", MAX_LIMIT)
    return sorted(orders, key=lambda order: order.order_id)


@get("/order", summary="Query order (signed, READ)")
async def query_order(request: Req) -> Response[Any]:
    signed = await signing.authenticate(request, Permission.READ)
    runtime = _runtime(request)
    market = context.market(runtime, signed.params.get("symbol"))
    order = await _find_order(runtime, signed, market)
    if order is None:
        raise errors.error(errors.NO_SUCH_ORDER)
    return _json(order_body(order, _scales(runtime, market)))


@delete("/order", status_code=200, summary="Cancel order (signed, TRADE)")
async def cancel_order(request: Req) -> Response[Any]:
    signed = await signing.authenticate(request, Permission.TRADE)
    runtime = _runtime(request)
    market = context.market(runtime, signed.params.get("symbol"))
    cancel_id = _cancel_client_id(signed.params)
    order = await _find_order(runtime, signed, market)
    if order is None or order.status not in OPEN:
        raise errors.error(errors.CANCEL_REJECTED)
    outcome = await runtime.execute(CancelOrder(account_id=signed.user_id, order_id=order.order_id))
    if outcome.reject is not None or outcome.order is None:
        raise (
            errors.from_reject(outcome.reject, cancel=True)
            if outcome.reject
            else errors.error(errors.CANCEL_REJECTED)
        )
    return _json(cancel_body(outcome.order, _scales(runtime, market), outcome.time, cancel_id))


def _cancel_client_id(params: dict[str, str]) -> str:
    value = _text(params, "newClientOrderId")
    if value is None:
        return _new_client_id()
    if not CLIENT_ID_RE.fullmatch(value):
        raise signing.illegal("newClientOrderId", CLIENT_ID_PATTERN)
    return value


@get("/openOrders", summary="Current open orders (signed, READ)")
async def open_orders(request: Req) -> Response[Any]:
    signed = await signing.authenticate(request, Permission.READ)
    runtime = _runtime(request)
    symbol = signed.params.get("symbol")
    market = context.market(runtime, symbol) if symbol else None
    orders = await _open_orders(runtime, signed.user_id, market.symbol if market else None)
    return _json([order_body(order, _scales_of(runtime, order.symbol)) for order in orders])


@delete("/openOrders", status_code=200, summary="Cancel all open orders on a symbol (signed, TRADE)")
async def cancel_open_orders(request: Req) -> Response[Any]:
    signed = await signing.authenticate(request, Permission.TRADE)
    runtime = _runtime(request)
    market = context.market(runtime, signed.params.get("symbol"))
    outcome = await runtime.execute(CancelAllOrders(account_id=signed.user_id, symbol=market.symbol))
    if outcome.reject is not None:
        raise errors.from_reject(outcome.reject, cancel=True)
    if not outcome.orders:
        raise errors.error(errors.CANCEL_REJECTED)  # Binance's answer when nothing was open
    scales = _scales(runtime, market)
    canceled = sorted(outcome.orders, key=lambda order: order.order_id)
    return _json([cancel_body(order, scales, outcome.time, _new_client_id()) for order in canceled])


# -- history: allOrders, myTrades ----------------------------------------------------------------


async def _collect(
    fetch: Callable[[int | None], Awaitable[tuple[list[T], int | None]]],
    *,
    keep: Callable[[T], bool],
    past: Callable[[T], bool],
    limit: int,
    oldest: bool,
    sort_key: Callable[[T], int],
) -> list[T]:
    """Rows from newest-first pages: those ``keep`` selects, until ``past`` says the pages went
    below the wanted range. ``oldest``: the ``limit`` oldest of the range, else the newest.
    Answered oldest first, as Binance does."""
    found: list[T] = []
    cursor: int | None = None
    scanned = 0
    done = False
    while not done:
        rows, cursor = await fetch(cursor)
        scanned += len(rows)
        for row in rows:
            if past(row):
                done = True
                break
            if keep(row):
                found.append(row)
                if not oldest and len(found) >= limit:
                    done = True
                    break
        if cursor is None or scanned >= SCAN_ROWS_MAX:
            done = True
    found.sort(key=sort_key)
    return found[:limit] if oldest else found[-limit:]


@get("/allOrders", summary="All orders of a symbol (signed, READ)")
async def all_orders(request: Req) -> Response[Any]:
    signed = await signing.authenticate(request, Permission.READ)
    runtime = _runtime(request)
    params = signed.params
    market = context.market(runtime, params.get("symbol"))
    from_id = _order_id(params)
    start = parse_int(params, "startTime")
    end = parse_int(params, "endTime")
    limit = _limit(params)
    user_id = signed.user_id

    async def fetch(cursor: int | None) -> tuple[list[OrderView], int | None]:
        return await runtime.read(
            runtime.queries.list_orders, user_id, market.symbol, "all", MAX_LIMIT, cursor
        )

    def keep(order: OrderView) -> bool:
        return (
            (from_id is None or order.order_id >= from_id)
            and (start is None or order.created_at >= start)
            and (end is None or order.created_at <= end)
        )

    def past(order: OrderView) -> bool:
        return (from_id is not None and order.order_id < from_id) or (
            start is not None and order.created_at < start
        )

    orders = await _collect(
        fetch,
        keep=keep,
        past=past,
        limit=limit,
        oldest=from_id is not None or start is not None,
        sort_key=lambda order: order.order_id,
    )
    scales = _scales(runtime, market)
    return _json([order_body(order, scales) for order in orders])


@get("/myTrades", summary="The caller's trades on a symbol (signed, READ)")
async def my_trades(request: Req) -> Response[Any]:
    signed = await signing.authenticate(request, Permission.READ)
    runtime = _runtime(request)
    params = signed.params
    market = context.market(runtime, params.get("symbol"))
    order_id = _order_id(params)
    from_id = parse_int(params, "fromId")
    start = parse_int(params, "startTime")
    end = parse_int(params, "endTime")
    limit = _limit(params)
    if from_id is not None and (start is not None or end is not None):
        raise errors.BinanceError(-1128, "Combination of optional parameters invalid.")
    user_id = signed.user_id
    scales = _scales(runtime, market)

    def keep(fill: Fill) -> bool:
        return (
            fill.symbol == market.symbol
            and (from_id is None or fill.trade_id >= from_id)
            and (start is None or fill.time >= start)
            and (end is None or fill.time <= end)
        )

    if order_id is not None:
        order = None
        if 1 <= order_id <= INT64_MAX:
            order = await runtime.read(runtime.queries.get_order, user_id, order_id)
        if order is None or order.symbol != market.symbol:
            return _json([])
        rows = await runtime.read(runtime.queries.order_fills, order_id)
        fills = [fill for fill in rows if fill.account_id == user_id and keep(fill)]
        fills = fills[:limit]
    else:

        async def fetch(cursor: int | None) -> tuple[list[Fill], int | None]:
            return await runtime.read(runtime.queries.list_fills, user_id, market.symbol, MAX_LIMIT, cursor)

        def past(fill: Fill) -> bool:
            return (from_id is not None and fill.trade_id < from_id) or (
                start is not None and fill.time < start
            )

        fills = await _collect(
            fetch,
            keep=keep,
            past=past,
            limit=limit,
            oldest=from_id is not None or start is not None,
            sort_key=lambda fill: fill.id,
        )
    return _json([my_trade_body(fill, scales) for fill in fills])


# -- account -------------------------------------------------------------------------------------


@get("/account", summary="Account information (signed, READ)")
async def account(request: Req) -> Response[Any]:
    signed = await signing.authenticate(request, Permission.READ)
    runtime = _runtime(request)
    rows = await runtime.read(runtime.queries.balances, signed.user_id)
    held = {row.asset: row for row in rows}
    assets = runtime.hub.assets
    omit_zero = signed.params.get("omitZeroBalances") == "true"
    balances = []
    for asset in sorted(assets):
        row = held.get(asset)
        free, locked = (row.available, row.locked) if row is not None else (0, 0)
        if omit_zero and not free and not locked:
            continue
        balances.append(
            {"asset": asset, "free": fmt(free, assets[asset]), "locked": fmt(locked, assets[asset])}
        )
    markets = list(runtime.hub.markets.values())
    maker_ppm = max((m.maker_fee_ppm for m in markets), default=0)
    taker_ppm = max((m.taker_fee_ppm for m in markets), default=0)
    principal = signed.principal
    can_trade = principal.has(Permission.TRADE)
    return _json(
        {
            "makerCommission": maker_ppm // 100,  # basis points, as Binance counts them
            "takerCommission": taker_ppm // 100,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": fmt(maker_ppm, 6),
                "taker": fmt(taker_ppm, 6),
                "buyer": fmt(0, 6),
                "seller": fmt(0, 6),
            },
            "canTrade": can_trade,
            "canWithdraw": principal.has(Permission.WITHDRAW),
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": signing.now_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": signed.user_id,
        }
    )


# -- userDataStream (API key, no signature) ------------------------------------------------------


async def _listen_key_param(request: Req) -> str:
    query: bytes = request.scope.get("query_string") or b""
    params = signing.parse_params(query, await request.body())
    key = _text(params, "listenKey")
    if key is None:
        raise errors.mandatory("listenKey")
    return key


@post("/userDataStream", status_code=200, summary="Start a user data stream (API key)")
async def start_user_stream(request: Req) -> Response[Any]:
    owner = await signing.key_owner(request)
    runtime = _runtime(request)
    key = await runtime.read(context.listen_keys(runtime).create, owner)
    return _json({"listenKey": key})


@put("/userDataStream", status_code=200, summary="Keep a user data stream alive (API key)")
async def keepalive_user_stream(request: Req) -> Response[Any]:
    owner = await signing.key_owner(request)
    key = await _listen_key_param(request)
    runtime = _runtime(request)
    keys = context.listen_keys(runtime)
    if await runtime.read(keys.owner, key) != owner:
        raise errors.error(errors.INVALID_LISTEN_KEY)
    if await runtime.read(keys.keepalive, key) != owner:
        raise errors.error(errors.INVALID_LISTEN_KEY)
    return _json({})


@delete("/userDataStream", status_code=200, summary="Close a user data stream (API key)")
async def close_user_stream(request: Req) -> Response[Any]:
    owner = await signing.key_owner(request)
    key = await _listen_key_param(request)
    runtime = _runtime(request)
    keys = context.listen_keys(runtime)
    if await runtime.read(keys.owner, key) != owner:
        raise errors.error(errors.INVALID_LISTEN_KEY)
    await runtime.read(keys.close, key)
    return _json({})


ROUTES: list[Any] = [
    account,
    new_order,
    test_order,
    query_order,
    cancel_order,
    open_orders,
    cancel_open_orders,
    all_orders,
    my_trades,
    start_user_stream,
    keepalive_user_stream,
    close_user_stream,
]
