"""Registration, login, token refresh and logout."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, post
from litestar.params import JSONBody

from cambist.api.auth import client_ip
from cambist.api.deps import PrincipalDep, RuntimeDep
from cambist.api.schemas import (
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    RegisterResponse,
    TokenResponse,
)


@post("/api/v1/auth/register", status_code=201, tags=["auth"], summary="Create an account")
async def register(data: JSONBody[RegisterRequest], runtime: RuntimeDep) -> RegisterResponse:
    user_id = await asyncio.to_thread(runtime.accounts.register, data.email, data.password)
    return RegisterResponse(user_id=user_id)


@post(
    "/api/v1/auth/login", status_code=200, tags=["auth"], summary="Log in for an access and a refresh token"
)
async def login(
    data: JSONBody[LoginRequest], request: Request[Any, Any, Any], runtime: RuntimeDep
) -> TokenResponse:
    ip = client_ip(request)
    pair = await asyncio.to_thread(
        runtime.accounts.login, data.email, data.password, ip, request.headers.get("user-agent")
    )
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@post("/api/v1/auth/refresh", status_code=200, tags=["auth"], summary="Trade a refresh token for a new pair")
async def refresh(data: JSONBody[RefreshRequest], runtime: RuntimeDep) -> TokenResponse:
    pair = await asyncio.to_thread(runtime.accounts.refresh, data.refresh_token)
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@post(
    "/api/v1/auth/logout",
    status_code=204,
    tags=["auth"],
    summary="End this session",
    opt={"session_only": True},
)
async def logout(
    principal: PrincipalDep, runtime: RuntimeDep, data: JSONBody[LogoutRequest | None] = None
) -> None:
    if principal.session_id is not None:
        await asyncio.to_thread(runtime.accounts.logout, principal.session_id)


ROUTES = [register, login, refresh, logout]
