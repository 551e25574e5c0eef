"""Operator endpoints (role admin): manual credits, assets and markets at runtime."""

from __future__ import annotations

import uuid

from litestar import Response, post
from litestar.params import JSONBody

from cambist.api.deps import PrincipalDep, RuntimeDep
from cambist.api.errors import ApiError, bad_request, not_found, reject_error
from cambist.api.money import fmt, parse_money
from cambist.api.pagination import INT64_MAX
from cambist.api.presenters import market_body
from cambist.api.schemas import (
    AssetRequest,
    AssetResponse,
    CreditRequest,
    CreditResponse,
    MarketRequest,
    MarketResponse,
)
from cambist.core.commands import AddAsset, Credit, UpsertMarket
from cambist.core.numbers import DecimalFormatError, parse_rate_ppm, parse_units
from cambist.core.types import MarketStatus, RejectCode, SelfTradePrevention

ADMIN = {"role": "admin"}
REASON_MAX = 200


@post("/api/v1/admin/credits", tags=["admin"], summary="Credit a user (ledgered)", opt=ADMIN)
async def credit(
    data: JSONBody[CreditRequest], principal: PrincipalDep, runtime: RuntimeDep
) -> Response[CreditResponse]:
    scale = runtime.hub.assets.get(data.asset)
    if scale is None:
        raise bad_request("UNKNOWN_ASSET", f"unknown asset {data.asset}")
    if not data.reason.strip() or len(data.reason) > REASON_MAX:
        raise bad_request("INVALID_REASON", f"reason must be 1-{REASON_MAX} characters")
    if data.credit_id is not None and not 1 <= len(data.credit_id) <= 64:
        raise bad_request("INVALID_CREDIT_ID", "creditId must be 1-64 characters")
    amount = parse_money(data.amount, scale, "amount", "INVALID_AMOUNT")
    if not 1 <= data.user_id <= INT64_MAX:  # no such user, and beyond what the store can look up
        raise not_found("USER_NOT_FOUND", "no such user")
    await runtime.read(runtime.accounts.get_user, data.user_id)  # 404 for an unknown user
    credit_id = data.credit_id or f"credit-{uuid.uuid4().hex}"
    # The operator is recorded in the reason: the ledger says who moved money and why.
    reason = f"{data.reason.strip()} (by user {principal.user_id})"
    outcome = await runtime.execute(Credit(credit_id, data.user_id, data.asset, amount, reason))
    status = 201
    if outcome.reject is RejectCode.DUPLICATE_CREDIT_ID:
        first = await runtime.read(runtime.queries.credit, credit_id)
        if first is None or (first.account_id, first.asset, first.amount) != (
            data.user_id,
            data.asset,
            amount,
        ):
            raise ApiError(409, "DUPLICATE_CREDIT_ID", "creditId was already used for a different credit")
        status = 200  # an idempotent retry: the credit was applied once, earlier
    elif outcome.reject is not None:
        raise reject_error(outcome.reject, outcome.message)
    balances = await runtime.read(runtime.queries.balances, data.user_id)
    balance = next((b for b in balances if b.asset == data.asset), None)
    body = CreditResponse(
        credit_id=credit_id,
        user_id=data.user_id,
        asset=data.asset,
        amount=fmt(amount, scale),
        available=fmt(balance.available if balance else 0, scale),
        locked=fmt(balance.locked if balance else 0, scale),
    )
    return Response(body, status_code=status)


@post("/api/v1/admin/assets", tags=["admin"], summary="Create an asset or change its scale", opt=ADMIN)
async def upsert_asset(data: JSONBody[AssetRequest], runtime: RuntimeDep) -> Response[AssetResponse]:
    created = data.asset not in runtime.hub.assets
    outcome = await runtime.execute(AddAsset(data.asset, data.scale))
    if outcome.reject is not None:
        raise reject_error(outcome.reject, outcome.message)
    return Response(AssetResponse(asset=data.asset, scale=data.scale), status_code=201 if created else 200)


def _units(text: str, scale: int, field: str) -> int:
    try:
        return parse_units(text, scale)
    except DecimalFormatError as error:
        raise bad_request("INVALID_MARKET", f"{field} {error}") from None


@post("/api/v1/admin/markets", tags=["admin"], summary="Create or update a market at runtime", opt=ADMIN)
async def upsert_market(data: JSONBody[MarketRequest], runtime: RuntimeDep) -> Response[MarketResponse]:
    assets = runtime.hub.assets
    for asset in (data.base_asset, data.quote_asset):
        if asset not in assets:
            raise bad_request("UNKNOWN_ASSET", f"unknown asset {asset}")
    base, quote = assets[data.base_asset], assets[data.quote_asset]
    try:
        maker_fee, taker_fee = parse_rate_ppm(data.maker_fee), parse_rate_ppm(data.taker_fee)
    except DecimalFormatError as error:
        raise bad_request("INVALID_MARKET", f"fee {error}") from None
    command = UpsertMarket(
        symbol=data.symbol,
        base_asset=data.base_asset,
        quote_asset=data.quote_asset,
        tick_size=_units(data.tick_size, quote, "tickSize"),
        lot_size=_units(data.lot_size, base, "lotSize"),
        min_quantity=_units(data.min_quantity, base, "minQuantity"),
        min_notional=_units(data.min_notional, quote, "minNotional"),
        maker_fee_ppm=maker_fee,
        taker_fee_ppm=taker_fee,
        status=MarketStatus(data.status),
        self_trade_prevention=SelfTradePrevention(data.self_trade_prevention),
    )
    created = data.symbol not in runtime.hub.markets
    outcome = await runtime.execute(command)
    if outcome.reject is not None:
        raise reject_error(outcome.reject, outcome.message)
    return Response(
        market_body(runtime.hub.markets[data.symbol], assets), status_code=201 if created else 200
    )


ROUTES = [credit, upsert_asset, upsert_market]
