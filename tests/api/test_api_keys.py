"""Programs: API keys, their permissions, and the signed-request rule of API.md."""

from __future__ import annotations

import ipaddress
import json
import time
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from .conftest import FundedUser, MakeKey, make_admin
from .support import API, ApiKey, User, assert_error, balances, create_api_key, new_user, sign, state

pytestmark = pytest.mark.asyncio(loop_scope="module")

Client = AsyncTestClient[Any]
ORDER = {
    "symbol": "BTC-USDT",
    "side": "buy",
    "type": "limit",
    "quantity": "0.001",
    "price": "10000",
    "timeInForce": "GTC",
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def body_of(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


# ---------------------------------------------------------------- creation and listing


async def test_create_shows_the_secret_once_and_never_in_the_list(client: Client) -> None:
    user = await new_user(client)
    response = await client.post(
        f"{API}/api-keys",
        json={"label": "my bot", "permissions": ["read", "trade"], "ipAllowlist": ["10.0.0.0/8"]},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["label"] == "my bot"
    assert created["permissions"] == ["read", "trade"]
    assert created["ipAllowlist"] == ["10.0.0.0/8"]
    assert isinstance(created["apiKey"], str) and created["apiKey"]
    assert isinstance(created["secret"], str) and len(created["secret"]) >= 32
    assert isinstance(created["createdAt"], int)

    listed = await client.get(f"{API}/api-keys", headers=user.headers)
    assert listed.status_code == 200
    assert created["secret"] not in listed.text
    (row,) = listed.json()["data"]
    assert row["apiKey"] == created["apiKey"]
    assert row.get("secret") is None
    assert row["permissions"] == ["read", "trade"]


async def test_keys_are_private_to_their_owner(client: Client, api_key: MakeKey) -> None:
    owner, other = await new_user(client), await new_user(client)
    key = await api_key(owner, ["read"])
    assert (await client.get(f"{API}/api-keys", headers=other.headers)).json()["data"] == []
    response = await client.delete(f"{API}/api-keys/{key.key}", headers=other.headers)
    assert_error(response, 404)
    assert (await key.request("GET", f"{API}/account")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"label": "x", "permissions": []},
        {"label": "x", "permissions": ["admin"]},
        {"label": "x", "permissions": "read"},
        {"label": "x", "permissions": ["read"], "ipAllowlist": ["not an ip"]},
        {"label": "x" * 1000, "permissions": ["read"]},
        {"permissions": ["read"]},
        {"label": "x", "permissions": ["read"], "roles": ["admin"]},
    ],
)
async def test_create_with_bad_input_is_400_and_creates_nothing(client: Client, body: Any) -> None:
    user = await new_user(client)
    response = await client.post(f"{API}/api-keys", json=body, headers=user.headers)
    assert_error(response, 400)
    assert (await client.get(f"{API}/api-keys", headers=user.headers)).json()["data"] == []


async def test_deleted_key_is_refused(client: Client, api_key: MakeKey) -> None:
    user = await new_user(client)
    key = await api_key(user, ["read"])
    assert (await key.request("GET", f"{API}/account")).status_code == 200
    response = await client.delete(f"{API}/api-keys/{key.key}", headers=user.headers)
    assert response.status_code == 204
    assert_error(await key.request("GET", f"{API}/account"), 401)


# ---------------------------------------------------------------- permissions


async def test_read_key_reads_but_cannot_trade(
    client: Client, funded_user: FundedUser, api_key: MakeKey
) -> None:
    user = await funded_user(USDT="1000")
    key = await api_key(user, ["read"])
    account = await key.request("GET", f"{API}/account")
    assert account.status_code == 200
    assert account.json()["permissions"] == ["read"]
    assert account.json()["apiKey"] == key.key
    assert (await key.request("GET", f"{API}/account/balances")).status_code == 200

    before = await state(client, user)
    assert_error(await key.request("POST", f"{API}/orders", ORDER), 403, "FORBIDDEN")
    assert_error(await key.request("DELETE", f"{API}/orders?symbol=BTC-USDT"), 403, "FORBIDDEN")
    assert await state(client, user) == before


async def test_trade_key_trades_but_cannot_manage_keys(
    client: Client, funded_user: FundedUser, api_key: MakeKey
) -> None:
    user = await funded_user(USDT="1000")
    trader = await api_key(user, ["trade"])
    placed = await trader.request("POST", f"{API}/orders", ORDER)
    assert placed.status_code == 201, placed.text
    assert (await balances(client, user))["USDT"] == ("990", "10")

    create = await trader.request("POST", f"{API}/api-keys", {"label": "x", "permissions": ["read", "trade"]})
    assert_error(create, 403, "FORBIDDEN")
    assert_error(await trader.request("GET", f"{API}/api-keys"), 403, "FORBIDDEN")
    assert_error(await trader.request("DELETE", f"{API}/api-keys/{trader.key}"), 403, "FORBIDDEN")
    # trade without read: reading the account is not allowed
    assert_error(await trader.request("GET", f"{API}/account/balances"), 403, "FORBIDDEN")
    keys = (await client.get(f"{API}/api-keys", headers=user.headers)).json()["data"]
    assert [k["apiKey"] for k in keys] == [trader.key]
    assert keys[0]["permissions"] == ["trade"]


async def test_a_key_of_an_admin_is_not_an_admin(client: Client) -> None:
    admin = await make_admin(client, "key-admin@example.com")
    response = await client.post(
        f"{API}/api-keys", json={"label": "x", "permissions": ["read", "trade"]}, headers=admin.headers
    )
    secret = response.json()
    key = ApiKey(client, secret["apiKey"], secret["secret"], secret["permissions"])
    credit = {"userId": admin.user_id, "asset": "USDT", "amount": "1", "reason": "x"}
    assert_error(await key.request("POST", f"{API}/admin/credits", credit), 403, "FORBIDDEN")
    assert await balances(client, admin) == {}


async def test_key_cannot_log_out_a_session(client: Client, api_key: MakeKey) -> None:
    user = await new_user(client)
    key = await api_key(user, ["read", "trade"])
    assert_error(await key.request("POST", f"{API}/auth/logout"), 403, "FORBIDDEN")
    assert (await client.get(f"{API}/account", headers=user.headers)).status_code == 200


# ---------------------------------------------------------------- the signature


async def test_signature_covers_the_query_string(
    client: Client, funded_user: FundedUser, api_key: MakeKey
) -> None:
    user = await funded_user(USDT="1000")
    key = await api_key(user, ["read", "trade"])
    assert (await key.request("POST", f"{API}/orders", ORDER)).status_code == 201
    path = f"{API}/orders?symbol=BTC-USDT&status=open&limit=10"
    response = await key.request("GET", path)
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 1

    # signed without the query, sent with it
    ts = key.timestamp()
    headers = {
        "X-API-KEY": key.key,
        "X-TIMESTAMP": ts,
        "X-SIGNATURE": sign(key.secret, ts, "GET", f"{API}/orders", b""),
    }
    assert_error(await key.send("GET", path, b"", headers), 401, "INVALID_SIGNATURE")
    # signed over one query, sent with another
    ts = key.timestamp()
    headers = {
        "X-API-KEY": key.key,
        "X-TIMESTAMP": ts,
        "X-SIGNATURE": sign(key.secret, ts, "GET", f"{API}/orders?symbol=BTC-USDT&status=all", b""),
    }
    assert_error(await key.send("GET", f"{API}/orders?symbol=ETH-USDT&status=all", b"", headers), 401)


async def test_signature_covers_an_encoded_query_exactly_as_sent(client: Client, api_key: MakeKey) -> None:
    user = await new_user(client)
    key = await api_key(user, ["read"])
    response = await key.request("GET", f"{API}/orders?clientOrderId=a%2Db")
    assert_error(response, 404, "ORDER_NOT_FOUND")  # authenticated; simply no such order


async def test_signature_covers_the_body(client: Client, funded_user: FundedUser, api_key: MakeKey) -> None:
    user = await funded_user(USDT="1000")
    key = await api_key(user, ["read", "trade"])
    signed_body = body_of(ORDER)
    headers = key.headers("POST", f"{API}/orders", signed_body)
    headers["Content-Type"] = "application/json"
    before = await state(client, user)
    tampered = body_of({**ORDER, "quantity": "0.09"})
    assert_error(await key.send("POST", f"{API}/orders", tampered, headers), 401, "INVALID_SIGNATURE")
    # the same JSON re-serialized with other spacing is other bytes: also refused
    spaced = json.dumps(ORDER).encode()
    assert_error(await key.send("POST", f"{API}/orders", spaced, headers), 401, "INVALID_SIGNATURE")
    # method and path are covered too
    assert_error(await key.send("PUT", f"{API}/orders", signed_body, headers), 405)
    assert await state(client, user) == before
    # the untouched request goes through
    assert (await key.send("POST", f"{API}/orders", signed_body, headers)).status_code == 201


async def test_wrong_signatures_are_401(client: Client, api_key: MakeKey) -> None:
    user = await new_user(client)
    key = await api_key(user, ["read"])
    path = f"{API}/account"
    ts = key.timestamp()
    good = sign(key.secret, ts, "GET", path, b"")
    for signature in (
        sign("another secret", ts, "GET", path, b""),
        sign(key.secret, ts, "POST", path, b""),
        sign(key.secret, str(int(ts) - 1), "GET", path, b""),
        good.upper(),  # the rule says lowercase hex
        good[:-1],
        "",
        "zz" * 32,
    ):
        headers = {"X-API-KEY": key.key, "X-TIMESTAMP": ts, "X-SIGNATURE": signature}
        assert_error(await key.send("GET", path, b"", headers), 401)
    for missing in ("X-TIMESTAMP", "X-SIGNATURE"):
        headers = {"X-API-KEY": key.key, "X-TIMESTAMP": ts, "X-SIGNATURE": good}
        del headers[missing]
        assert_error(await key.send("GET", path, b"", headers), 401)
    unknown = {"X-API-KEY": "no-such-key", "X-TIMESTAMP": ts, "X-SIGNATURE": good}
    assert_error(await key.send("GET", path, b"", unknown), 401)


async def test_stale_and_future_timestamps_are_401(client: Client, api_key: MakeKey) -> None:
    user = await new_user(client)
    key = await api_key(user, ["read"])
    path = f"{API}/account"
    stale = await key.request("GET", path, timestamp=str(now_ms() - 6_000))
    assert_error(stale, 401, "TIMESTAMP_OUTSIDE_WINDOW")
    future = await key.request("GET", path, timestamp=str(now_ms() + 10_000))
    assert_error(future, 401, "TIMESTAMP_OUTSIDE_WINDOW")
    for bad in ("abc", "-1", "0", "1e12", " 1"):
        assert_error(await key.request("GET", path, timestamp=bad), 401)


async def test_recv_window_widens_the_window_up_to_60_s(client: Client, api_key: MakeKey) -> None:
    user = await new_user(client)
    key = await api_key(user, ["read"])
    path = f"{API}/account"
    old = str(now_ms() - 6_000)
    response = await key.request("GET", path, timestamp=old, headers={"X-RECV-WINDOW": "10000"})
    assert response.status_code == 200, response.text
    older = str(now_ms() - 30_000)
    response = await key.request("GET", path, timestamp=older, headers={"X-RECV-WINDOW": "10000"})
    assert_error(response, 401, "TIMESTAMP_OUTSIDE_WINDOW")
    response = await key.request(
        "GET", path, timestamp=str(now_ms() - 59_000), headers={"X-RECV-WINDOW": "60000"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("window", ["60001", "600000", "99999999", "0", "-1", "abc", "1.5", " 10", "١٢"])
async def test_recv_window_out_of_range_is_refused(client: Client, api_key: MakeKey, window: str) -> None:
    user = await new_user(client)
    key = await api_key(user, ["read"])
    before = await state(client, user)
    order = body_of(ORDER)
    headers: dict[str, Any] = {
        **key.headers("POST", f"{API}/orders", order),
        "Content-Type": "application/json",
    }
    headers["X-RECV-WINDOW"] = window.encode()  # bytes: httpx would refuse non-ASCII text
    response = await key.send("POST", f"{API}/orders", order, headers)
    assert_error(response, 400, "INVALID_RECV_WINDOW")
    assert await state(client, user) == before


async def test_recv_window_over_60_s_does_not_accept_an_old_request(client: Client, api_key: MakeKey) -> None:
    user = await new_user(client)
    key = await api_key(user, ["read"])
    old = str(now_ms() - 120_000)
    response = await key.request("GET", f"{API}/account", timestamp=old, headers={"X-RECV-WINDOW": "300000"})
    assert response.status_code in (400, 401)
    assert_error(response, response.status_code)


async def test_a_replayed_request_is_refused_and_has_no_effect(
    client: Client, funded_user: FundedUser, api_key: MakeKey
) -> None:
    user = await funded_user(USDT="1000")
    key = await api_key(user, ["read", "trade"])
    body = body_of(ORDER)
    headers = {**key.headers("POST", f"{API}/orders", body), "Content-Type": "application/json"}
    first = await key.send("POST", f"{API}/orders", body, headers)
    assert first.status_code == 201, first.text
    after_first = await state(client, user)
    replay = await key.send("POST", f"{API}/orders", body, headers)
    assert_error(replay, 401, "REPLAYED_REQUEST")
    assert await state(client, user) == after_first
    assert len(after_first[0][1]) == 1  # one order
    # a GET is protected the same way
    get_headers = key.headers("GET", f"{API}/account/balances")
    assert (await key.send("GET", f"{API}/account/balances", b"", get_headers)).status_code == 200
    assert_error(await key.send("GET", f"{API}/account/balances", b"", get_headers), 401, "REPLAYED_REQUEST")


async def test_ip_allowlist(client: Client, funded_user: FundedUser, api_key: MakeKey) -> None:
    user = await funded_user(USDT="1000")
    elsewhere = await api_key(user, ["read", "trade"], ipAllowlist=["10.0.0.1"])
    before = await state(client, user)
    assert_error(await elsewhere.request("GET", f"{API}/account"), 403, "IP_NOT_ALLOWED")
    assert_error(await elsewhere.request("POST", f"{API}/orders", ORDER), 403, "IP_NOT_ALLOWED")
    assert await state(client, user) == before

    here = await api_key(user, ["read"], ipAllowlist=["10.0.0.1", "127.0.0.0/8"])
    assert (await here.request("GET", f"{API}/account")).status_code == 200


async def test_spoofed_forwarded_for_does_not_pass_the_allowlist(client: Client, api_key: MakeKey) -> None:
    user = await new_user(client)
    key = await api_key(user, ["read"], ipAllowlist=["10.0.0.1"])
    spoofed = {"X-Forwarded-For": "10.0.0.1", "X-Real-IP": "10.0.0.1", "Forwarded": "for=10.0.0.1"}
    assert_error(await key.request("GET", f"{API}/account", headers=spoofed), 403, "IP_NOT_ALLOWED")


async def test_bearer_and_key_users_see_the_same_account(client: Client, api_key: MakeKey) -> None:
    user: User = await new_user(client)
    key = await api_key(user, ["read", "trade", "withdraw"])
    by_key = (await key.request("GET", f"{API}/account")).json()
    by_token = (await client.get(f"{API}/account", headers=user.headers)).json()
    assert by_key["userId"] == by_token["userId"] == user.user_id
    assert by_key["apiKey"] == key.key and by_token["apiKey"] is None


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(make_client: Any) -> None:
    # the test client's peer is 127.0.0.1: make it the trusted reverse proxy
    async with make_client(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)) as private:
        user = await new_user(private)
        key = await create_api_key(private, user, ["read"], ipAllowlist=["10.0.0.1"])
        path = f"{API}/account"
        assert_error(await key.request("GET", path), 403, "IP_NOT_ALLOWED")  # the proxy itself
        allowed = await key.request("GET", path, headers={"X-Forwarded-For": "10.0.0.1"})
        assert allowed.status_code == 200, allowed.text
        via_two_proxies = await key.request("GET", path, headers={"X-Forwarded-For": "10.0.0.1, 127.0.0.5"})
        assert via_two_proxies.status_code == 200, via_two_proxies.text
        for forwarded in (
            "10.0.0.2",
            "10.0.0.1, 10.0.0.9",  # the client wrote 10.0.0.1; our proxy saw 10.0.0.9
            "not-an-ip",
            "",
        ):
            response = await key.request("GET", path, headers={"X-Forwarded-For": forwarded})
            assert_error(response, 403, "IP_NOT_ALLOWED")
