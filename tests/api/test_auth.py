"""People: register, login, refresh with rotation, logout, tokens, the account profile."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient

from cambist.accounts.crypto import derive_key

from .support import API, PASSWORD, assert_error, login, new_email, new_user, register

pytestmark = pytest.mark.asyncio(loop_scope="module")

Client = AsyncTestClient[Any]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_returns_201_with_the_user_id_only(client: Client) -> None:
    response = await client.post(f"{API}/auth/register", json={"email": new_email(), "password": PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"userId"} and isinstance(body["userId"], int) and body["userId"] > 0


async def test_register_duplicate_email_is_409_also_with_other_case_and_spaces(client: Client) -> None:
    email = new_email()
    await register(client, email)
    for again in (email, email.upper(), f"  {email}  "):
        response = await client.post(f"{API}/auth/register", json={"email": again, "password": PASSWORD})
        assert_error(response, 409, "EMAIL_TAKEN")
    # the first account is untouched: its password still works
    await login(client, email)


@pytest.mark.parametrize(
    "email",
    [
        "",
        "not-an-email",
        "a@",
        "@example.com",
        "a b@example.com",
        "a..b@example.com",
        "ü@example.com",
        "x" * 300 + "@example.com",
    ],
)
async def test_register_bad_email_is_400(client: Client, email: str) -> None:
    response = await client.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})
    assert_error(response, 400, "INVALID_EMAIL")


@pytest.mark.parametrize("password", ["", "short", "1234567", "x" * 129])
async def test_register_bad_password_is_400_and_creates_nothing(client: Client, password: str) -> None:
    email = new_email()
    response = await client.post(f"{API}/auth/register", json={"email": email, "password": password})
    assert_error(response, 400, "INVALID_PASSWORD")
    # nothing was created: the email is still free
    await register(client, email)


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com"},
        {"password": PASSWORD},
        {"email": 5, "password": PASSWORD},
        {"email": "a@example.com", "password": PASSWORD, "role": "admin"},
        [],
    ],
)
async def test_register_malformed_body_is_400(client: Client, body: Any) -> None:
    response = await client.post(f"{API}/auth/register", json=body)
    assert_error(response, 400)


async def test_register_cannot_grant_roles(client: Client) -> None:
    response = await client.post(
        f"{API}/auth/register", json={"email": new_email(), "password": PASSWORD, "roles": ["admin"]}
    )
    assert_error(response, 400)


async def test_login_returns_the_token_pair(client: Client) -> None:
    email = new_email()
    await register(client, email)
    body = await login(client, email)
    assert set(body) >= {"accessToken", "refreshToken", "tokenType", "expiresIn"}
    assert body["tokenType"] == "Bearer"
    assert isinstance(body["expiresIn"], int) and body["expiresIn"] > 0
    assert body["accessToken"] and body["refreshToken"] and body["accessToken"] != body["refreshToken"]


async def test_login_wrong_password_and_unknown_email_look_the_same(client: Client) -> None:
    email = new_email()
    await register(client, email)
    wrong = await client.post(f"{API}/auth/login", json={"email": email, "password": "wrong password!"})
    unknown = await client.post(f"{API}/auth/login", json={"email": new_email(), "password": PASSWORD})
    assert assert_error(wrong, 401, "INVALID_CREDENTIALS") == assert_error(
        unknown, 401, "INVALID_CREDENTIALS"
    )


async def test_login_email_is_case_insensitive(client: Client) -> None:
    email = new_email()
    await register(client, email)
    await login(client, email.upper())


async def test_account_shape(client: Client) -> None:
    user = await new_user(client)
    response = await client.get(f"{API}/account", headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["userId"] == user.user_id
    assert body["email"] == user.email
    assert body["roles"] == ["user"]
    assert body["status"] == "active"
    assert isinstance(body["createdAt"], int) and body["createdAt"] > 1_600_000_000_000
    assert body["permissions"] == ["read", "trade", "withdraw"]
    assert body["apiKey"] is None


async def test_refresh_rotates_and_the_old_refresh_token_is_refused(client: Client) -> None:
    user = await new_user(client)
    first = await client.post(f"{API}/auth/refresh", json={"refreshToken": user.refresh_token})
    assert first.status_code == 200, first.text
    pair = first.json()
    assert pair["tokenType"] == "Bearer"
    assert pair["refreshToken"] != user.refresh_token
    assert (await client.get(f"{API}/account", headers=bearer(pair["accessToken"]))).status_code == 200

    reused = await client.post(f"{API}/auth/refresh", json={"refreshToken": user.refresh_token})
    assert_error(reused, 401, "REFRESH_TOKEN_REUSED")
    # reuse means theft: the whole session ends, including what the rotation gave out
    again = await client.post(f"{API}/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert_error(again, 401)
    assert_error(await client.get(f"{API}/account", headers=bearer(pair["accessToken"])), 401)


@pytest.mark.parametrize("token", ["", "garbage", "x" * 5000])
async def test_refresh_with_an_unknown_token_is_401_or_400(client: Client, token: str) -> None:
    response = await client.post(f"{API}/auth/refresh", json={"refreshToken": token})
    assert response.status_code in (400, 401)
    assert_error(response, response.status_code)


async def test_logout_ends_the_session(client: Client) -> None:
    user = await new_user(client)
    other = await login(client, user.email)  # a second session of the same user
    response = await client.post(f"{API}/auth/logout", headers=user.headers)
    assert response.status_code == 204
    assert_error(await client.get(f"{API}/account", headers=user.headers), 401)
    assert_error(await client.post(f"{API}/auth/refresh", json={"refreshToken": user.refresh_token}), 401)
    # the other session lives on
    assert (await client.get(f"{API}/account", headers=bearer(other["accessToken"]))).status_code == 200


async def test_logout_needs_authentication(client: Client) -> None:
    assert_error(await client.post(f"{API}/auth/logout"), 401, "UNAUTHORIZED")


def _forge(token: str, key: bytes, **changes: Any) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    return jwt.encode(claims, key, algorithm="HS256")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_expired_token_is_401_token_expired(client: Client) -> None:
    user = await new_user(client)
    key = derive_key(client.app.state.runtime.settings.secret_key, "jwt-access/v1")
    now = int(time.time())
    expired = _forge(user.access_token, key, iat=now - 2000, exp=now - 1000)
    assert_error(await client.get(f"{API}/account", headers=bearer(expired)), 401, "TOKEN_EXPIRED")


async def test_forged_tokens_are_401(client: Client) -> None:
    user = await new_user(client)
    token = user.access_token
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forgeries = [
        _forge(token, b"another key entirely, 32 bytes!!"),
        _forge(token, b"another key entirely, 32 bytes!!", roles=["user", "admin"]),
        f"{header}.{_b64({**claims, 'roles': ['user', 'admin']})}.{signature}",  # tampered payload
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",  # alg none
        f"{header}.{payload}.{signature[:-2]}AA",
        "not.a.jwt",
        "garbage",
    ]
    for forged in forgeries:
        assert_error(await client.get(f"{API}/account", headers=bearer(forged)), 401)
    admin_only = await client.post(
        f"{API}/admin/credits",
        json={"userId": user.user_id, "asset": "USDT", "amount": "1", "reason": "x"},
        headers=bearer(forgeries[2]),
    )
    assert_error(admin_only, 401)


@pytest.mark.parametrize("authorization", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
async def test_bad_authorization_header_is_401(client: Client, authorization: str) -> None:
    response = await client.get(f"{API}/account", headers={"Authorization": authorization})
    assert_error(response, 401)


async def test_protected_routes_need_authentication(client: Client) -> None:
    for method, path in [
        ("GET", "/account"),
        ("GET", "/account/balances"),
        ("GET", "/account/trades"),
        ("GET", "/orders"),
        ("POST", "/orders"),
        ("GET", "/orders/1"),
        ("DELETE", "/orders/1"),
        ("DELETE", "/orders?symbol=BTC-USDT"),
        ("POST", "/api-keys"),
        ("GET", "/api-keys"),
        ("POST", "/admin/credits"),
        ("POST", "/admin/assets"),
        ("POST", "/admin/markets"),
    ]:
        response = await client.request(method, f"{API}{path}", json={} if method == "POST" else None)
        assert_error(response, 401, "UNAUTHORIZED")


async def test_access_token_expires_for_real(make_client: Any) -> None:
    # 3 s: a refreshed token must outlive a loaded machine's next request (exp is whole seconds).
    async with make_client(access_token_ttl_s=3) as private:
        user = await new_user(private)
        assert (await private.get(f"{API}/account", headers=user.headers)).status_code == 200
        time.sleep(4.05)  # the token's exp is whole seconds: at most 4 s from now
        assert_error(await private.get(f"{API}/account", headers=user.headers), 401, "TOKEN_EXPIRED")
        # the refresh token still works and gives a fresh access token
        response = await private.post(f"{API}/auth/refresh", json={"refreshToken": user.refresh_token})
        assert response.status_code == 200, response.text
        assert (
            await private.get(f"{API}/account", headers=bearer(response.json()["accessToken"]))
        ).status_code == 200


async def test_email_is_stored_normalized(client: Client) -> None:
    email = new_email("Mixed.Case")
    await register(client, f"  {email.upper()} ")
    tokens = await login(client, email)
    account = (await client.get(f"{API}/account", headers=bearer(tokens["accessToken"]))).json()
    assert account["email"] == email.lower()


@pytest.mark.parametrize("body", [None, {}, {"refreshToken": "whatever"}])
async def test_logout_accepts_an_empty_or_optional_body(client: Client, body: Any) -> None:
    user = await new_user(client)
    response = await client.post(f"{API}/auth/logout", json=body, headers=user.headers)
    assert response.status_code == 204, response.text
    assert_error(await client.get(f"{API}/account", headers=user.headers), 401)


async def test_logout_with_a_malformed_body_is_400_and_keeps_the_session(client: Client) -> None:
    user = await new_user(client)
    response = await client.post(f"{API}/auth/logout", json={"refreshToken": 5}, headers=user.headers)
    assert_error(response, 400)
    assert (await client.get(f"{API}/account", headers=user.headers)).status_code == 200
