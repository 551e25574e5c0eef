"""The caller's own account: profile, balances, fills, API keys and sessions."""

from __future__ import annotations

import asyncio

from litestar import delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from cambist.accounts.records import ApiKeyInfo
from cambist.api.deps import PrincipalDep, RuntimeDep
from cambist.api.errors import bad_request
from cambist.api.money import fmt
from cambist.api.pagination import Page, clamp_limit, parse_cursor
from cambist.api.schemas import (
    AccountResponse,
    AccountTradeResponse,
    ApiKeyCreateRequest,
    ApiKeyResponse,
    BalanceResponse,
)

READ = {"permission": "read"}


@get("/api/v1/account", tags=["account"], summary="The caller's account", opt=READ)
async def account(principal: PrincipalDep, runtime: RuntimeDep) -> AccountResponse:
    user = await runtime.read(runtime.accounts.get_user, principal.user_id)
    return AccountResponse(
        user_id=user.id,
        email=user.email,
        roles=sorted(role.value for role in user.roles),
        status=user.status.value,
        created_at=user.created_at,
        permissions=sorted(p.value for p in principal.permissions),
        api_key=principal.api_key_id,
    )


@get("/api/v1/account/balances", tags=["account"], summary="Available and locked balance per asset", opt=READ)
async def balances(principal: PrincipalDep, runtime: RuntimeDep) -> Page[BalanceResponse]:
    rows = await runtime.read(runtime.queries.balances, principal.user_id)
    assets = runtime.hub.assets
    data = [
        BalanceResponse(
            asset=row.asset,
            available=fmt(row.available, assets[row.asset]),
            locked=fmt(row.locked, assets[row.asset]),
        )
        for row in rows
    ]
    return Page(data=data, next_cursor=None)


@get("/api/v1/account/trades", tags=["account"], summary="The caller's fills, newest first", opt=READ)
async def account_trades(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    symbol: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
    cursor: FromQuery[str | None] = None,
) -> Page[AccountTradeResponse]:
    if symbol is not None and symbol not in runtime.hub.markets:
        raise bad_request("UNKNOWN_SYMBOL", f"unknown symbol {symbol}")
    rows, next_cursor = await runtime.read(
        runtime.queries.list_fills, principal.user_id, symbol, clamp_limit(limit), parse_cursor(cursor)
    )
    assets = runtime.hub.assets
    data = []
    for row in rows:
        market = runtime.hub.markets[row.symbol]
        base, quote = assets[market.base_asset], assets[market.quote_asset]
        data.append(
            AccountTradeResponse(
                trade_id=row.trade_id,
                order_id=row.order_id,
                symbol=row.symbol,
                side=str(row.side),
                price=fmt(row.price, quote),
                quantity=fmt(row.quantity, base),
                quote_quantity=fmt(row.quote_quantity, quote),
                fee=fmt(row.fee, assets[row.fee_asset]),
                fee_asset=row.fee_asset,
                liquidity=str(row.liquidity),
                time=row.time,
            )
        )
    return Page(data=data, next_cursor=None if next_cursor is None else str(next_cursor))


def _key_body(info: ApiKeyInfo, secret: str | None = None) -> ApiKeyResponse:
    return ApiKeyResponse(
        api_key=info.id,
        label=info.label,
        permissions=sorted(p.value for p in info.permissions),
        ip_allowlist=list(info.ip_allowlist),
        created_at=info.created_at,
        secret=secret,
    )


SESSION = {"session_only": True}


@post(
    "/api/v1/api-keys",
    status_code=201,
    tags=["api keys"],
    summary="Create an API key (secret shown once)",
    opt=SESSION,
)
async def create_api_key(
    data: JSONBody[ApiKeyCreateRequest], principal: PrincipalDep, runtime: RuntimeDep
) -> ApiKeyResponse:
    _key_id, secret, info = await asyncio.to_thread(
        runtime.accounts.create_api_key, principal.user_id, data.label, data.permissions, data.ip_allowlist
    )
    return _key_body(info, secret)


@get("/api/v1/api-keys", tags=["api keys"], summary="The caller's API keys", opt=SESSION)
async def list_api_keys(principal: PrincipalDep, runtime: RuntimeDep) -> Page[ApiKeyResponse]:
    keys = await runtime.read(runtime.accounts.list_api_keys, principal.user_id)
    return Page(data=[_key_body(info) for info in keys], next_cursor=None)


@delete(
    "/api/v1/api-keys/{key_id:str}",
    status_code=204,
    tags=["api keys"],
    summary="Revoke an API key",
    opt=SESSION,
)
async def delete_api_key(key_id: FromPath[str], principal: PrincipalDep, runtime: RuntimeDep) -> None:
    await asyncio.to_thread(runtime.accounts.delete_api_key, principal.user_id, key_id)


ROUTES = [account, balances, account_trades, create_api_key, list_api_keys, delete_api_key]
