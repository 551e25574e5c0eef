"""Helpers of the API acceptance tests: users, signed requests, error and state assertions.

Everything here talks to the app over HTTP only (the admin account is the one exception: it is
created the way ``cambist admin create-user`` does it, through ``runtime.accounts``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from httpx import Response
from litestar.testing import AsyncTestClient

API = "/api/v1"
PASSWORD = "correct horse battery staple"
_emails = itertools.count(1)


def new_email(prefix: str = "user") -> str:
    return f"{prefix}{next(_emails)}-{time.time_ns()}@example.com"


def assert_error(response: Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The contract's error shape: exactly ``{code, message}``, a stable UPPER_SNAKE code."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"code", "message"}, body
    assert isinstance(body["code"], str) and re.fullmatch(r"[A-Z][A-Z0-9_]*", body["code"]), body
    assert isinstance(body["message"], str) and body["message"].strip(), body
    if code is not None:
        assert body["code"] == code, body
    return body


@dataclass
class User:
    user_id: int
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register(client: AsyncTestClient[Any], email: str | None = None, password: str = PASSWORD) -> int:
    email = email or new_email()
    response = await client.post(f"{API}/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"userId"} and isinstance(body["userId"], int)
    return int(body["userId"])


async def login(client: AsyncTestClient[Any], email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post(f"{API}/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_user(client: AsyncTestClient[Any], prefix: str = "user") -> User:
    email = new_email(prefix)
    user_id = await register(client, email)
    tokens = await login(client, email)
    return User(user_id, email, PASSWORD, tokens["accessToken"], tokens["refreshToken"])


async def credit(
    client: AsyncTestClient[Any], admin: User, user_id: int, asset: str, amount: str, **extra: Any
) -> Response:
    body = {"userId": user_id, "asset": asset, "amount": amount, "reason": "test funding", **extra}
    return await client.post(f"{API}/admin/credits", json=body, headers=admin.headers)


async def balances(client: AsyncTestClient[Any], user: User) -> dict[str, tuple[str, str]]:
    response = await client.get(f"{API}/account/balances", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["nextCursor"] is None
    return {row["asset"]: (row["available"], row["locked"]) for row in body["data"]}


async def all_orders(client: AsyncTestClient[Any], user: User) -> list[dict[str, Any]]:
    response = await client.get(
        f"{API}/orders", params={"status": "all", "limit": 1000}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def state(client: AsyncTestClient[Any], *users: User) -> Any:
    """Everything a refused request must leave untouched: balances, orders, fills, books."""
    snapshot: list[Any] = []
    for user in users:
        fills = await client.get(f"{API}/account/trades", params={"limit": 1000}, headers=user.headers)
        assert fills.status_code == 200, fills.text
        snapshot.append((await balances(client, user), await all_orders(client, user), fills.json()))
    for symbol in ("BTC-USDT", "ETH-USDT", "ETH-BTC"):
        book = (await client.get(f"{API}/orderbook/{symbol}")).json()
        snapshot.append((book["bids"], book["asks"]))
    return snapshot


async def place(client: AsyncTestClient[Any], user: User, **order: Any) -> Response:
    body = {"symbol": "BTC-USDT", **order}
    return await client.post(f"{API}/orders", json=body, headers=user.headers)


async def placed(client: AsyncTestClient[Any], user: User, **order: Any) -> dict[str, Any]:
    response = await place(client, user, **order)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def sign(secret: str, timestamp: str, method: str, path_with_query: str, body: bytes) -> str:
    """The rule of API.md, written out here independently of the server's implementation."""
    payload = timestamp.encode() + method.upper().encode() + path_with_query.encode() + body
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


@dataclass
class ApiKey:
    """An API key and a way to send requests signed with it."""

    client: AsyncTestClient[Any]
    key: str
    secret: str
    permissions: list[str]
    _last_ts: int = field(default=0)

    def timestamp(self) -> str:
        # Strictly increasing, so two identical requests never share a signature by accident.
        now = time.time_ns() // 1_000_000
        self._last_ts = max(now, self._last_ts + 1)
        return str(self._last_ts)

    def headers(
        self, method: str, path_with_query: str, body: bytes = b"", *, timestamp: str | None = None
    ) -> dict[str, str]:
        ts = timestamp or self.timestamp()
        return {
            "X-API-KEY": self.key,
            "X-TIMESTAMP": ts,
            "X-SIGNATURE": sign(self.secret, ts, method, path_with_query, body),
        }

    async def request(
        self,
        method: str,
        path_with_query: str,
        json_body: Any = None,
        *,
        timestamp: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        sent = self.headers(method, path_with_query, body, timestamp=timestamp)
        if body:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        return await self.client.request(method, path_with_query, content=body, headers=sent)

    async def send(self, method: str, path_with_query: str, body: bytes, headers: dict[str, str]) -> Response:
        """Send exactly these bytes and headers (for replays and tampering)."""
        return await self.client.request(method, path_with_query, content=body, headers=headers)


async def create_api_key(
    client: AsyncTestClient[Any], user: User, permissions: list[str], **extra: Any
) -> ApiKey:
    body = {"label": "test key", "permissions": permissions, **extra}
    response = await client.post(f"{API}/api-keys", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    data = response.json()
    return ApiKey(client, data["apiKey"], data["secret"], data["permissions"])
