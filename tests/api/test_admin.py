"""Administration: role checks, assets and markets at runtime, halts, fee changes, credits."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from .conftest import FundedUser, MakeKey, NewMarket
from .support import API, User, assert_error, balances, credit, new_user, place, placed, state

pytestmark = pytest.mark.asyncio(loop_scope="module")

Client = AsyncTestClient[Any]
_names = itertools.count(1)


def asset_name() -> str:
    return f"ADM{next(_names)}"


def market_body(base: str, quote: str = "USDT", **changes: Any) -> dict[str, Any]:
    return {
        "symbol": f"{base}-{quote}",
        "baseAsset": base,
        "quoteAsset": quote,
        "tickSize": "0.01",
        "lotSize": "0.01",
        "minQuantity": "0.01",
        "minNotional": "1",
        "makerFee": "0.001",
        "takerFee": "0.002",
        "status": "trading",
        **changes,
    }


async def markets_and_assets(client: Client) -> Any:
    markets = (await client.get(f"{API}/markets")).json()
    return markets


# ---------------------------------------------------------------- roles


async def test_non_admin_is_403_on_every_admin_route(client: Client, funded_user: FundedUser) -> None:
    user = await funded_user(USDT="10")
    before = (await state(client, user), await markets_and_assets(client))
    requests = [
        (
            "/admin/credits",
            {"userId": user.user_id, "asset": "USDT", "amount": "1000", "reason": "self-service"},
        ),
        ("/admin/assets", {"asset": "HACK", "scale": 8}),
        ("/admin/markets", market_body("BTC") | {"makerFee": "0", "takerFee": "0"}),
        ("/admin/markets", {**market_body("BTC"), "status": "halted"}),
    ]
    for path, body in requests:
        response = await client.post(f"{API}{path}", json=body, headers=user.headers)
        assert_error(response, 403, "FORBIDDEN")
    assert (await state(client, user), await markets_and_assets(client)) == before
    assert "HACK" not in str(before)


async def test_admin_routes_refuse_api_keys_even_of_an_admin(
    client: Client, admin: User, api_key: MakeKey
) -> None:
    key = await api_key(admin, ["read", "trade", "withdraw"])
    body = {"userId": admin.user_id, "asset": "USDT", "amount": "1", "reason": "x"}
    assert_error(await key.request("POST", f"{API}/admin/credits", body), 403, "FORBIDDEN")
    assert_error(await key.request("POST", f"{API}/admin/assets", {"asset": "KEYX", "scale": 2}), 403)
    assert "KEYX" not in (await client.get(f"{API}/markets")).text


# ---------------------------------------------------------------- assets


async def test_create_an_asset_then_update_its_scale(client: Client, admin: User) -> None:
    name = asset_name()
    created = await client.post(
        f"{API}/admin/assets", json={"asset": name, "scale": 4}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    assert created.json() == {"asset": name, "scale": 4}
    again = await client.post(f"{API}/admin/assets", json={"asset": name, "scale": 4}, headers=admin.headers)
    assert again.status_code == 200 and again.json() == {"asset": name, "scale": 4}
    changed = await client.post(
        f"{API}/admin/assets", json={"asset": name, "scale": 6}, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text
    # once someone holds it, the scale cannot change (every balance would be misread)
    user = await new_user(client)
    assert (await credit(client, admin, user.user_id, name, "1.5")).status_code == 201
    locked = await client.post(f"{API}/admin/assets", json={"asset": name, "scale": 2}, headers=admin.headers)
    assert_error(locked, 409, "ASSET_SCALE_LOCKED")
    assert await balances(client, user) == {name: ("1.5", "0")}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"asset": "A", "scale": 8}, "INVALID_ASSET"),
        ({"asset": "abc", "scale": 8}, "INVALID_ASSET"),
        ({"asset": "A-B", "scale": 8}, "INVALID_ASSET"),
        ({"asset": "ABCDEFGHIJKLM", "scale": 8}, "INVALID_ASSET"),
        ({"asset": "", "scale": 8}, "INVALID_ASSET"),
        ({"asset": "ÄÖ", "scale": 8}, "INVALID_ASSET"),
        ({"asset": "SCALEX", "scale": -1}, "INVALID_ASSET"),
        ({"asset": "SCALEX", "scale": 99}, "INVALID_ASSET"),
        ({"asset": "SCALEX", "scale": "8"}, None),
        ({"asset": "SCALEX", "scale": 8.0}, None),
        ({"asset": "SCALEX"}, None),
        ({"asset": "SCALEX", "scale": 8, "extra": 1}, None),
    ],
)
async def test_bad_asset_is_400(client: Client, admin: User, body: dict[str, Any], code: str | None) -> None:
    response = await client.post(f"{API}/admin/assets", json=body, headers=admin.headers)
    assert_error(response, 400, code)
    credit_new = await credit(client, admin, admin.user_id, str(body.get("asset")), "1")
    assert_error(credit_new, 400, "UNKNOWN_ASSET")


async def test_asset_name_with_a_trailing_newline_is_refused(client: Client, admin: User) -> None:
    response = await client.post(
        f"{API}/admin/assets", json={"asset": "NL\n", "scale": 8}, headers=admin.headers
    )
    assert_error(response, 400, "INVALID_ASSET")


# ---------------------------------------------------------------- markets


async def test_create_a_market_at_runtime_and_trade_on_it_at_once(
    client: Client, admin: User, funded_user: FundedUser
) -> None:
    base = asset_name()
    assert (
        await client.post(f"{API}/admin/assets", json={"asset": base, "scale": 2}, headers=admin.headers)
    ).status_code == 201
    response = await client.post(f"{API}/admin/markets", json=market_body(base), headers=admin.headers)
    assert response.status_code == 201, response.text
    market = response.json()
    assert market["symbol"] == f"{base}-USDT"
    assert (market["tickSize"], market["lotSize"], market["minNotional"]) == ("0.01", "0.01", "1")
    assert (market["makerFee"], market["takerFee"], market["status"], market["type"]) == (
        "0.001",
        "0.002",
        "trading",
        "spot",
    )
    listed = {m["symbol"]: m for m in (await client.get(f"{API}/markets")).json()["data"]}
    assert listed[market["symbol"]] == market

    symbol = market["symbol"]
    seller = await funded_user(**{base: "100"})
    buyer = await funded_user(USDT="1000")
    await placed(client, seller, symbol=symbol, side="sell", type="limit", quantity="10", price="12.5")
    order = await placed(client, buyer, symbol=symbol, side="buy", type="market", quantity="4")
    assert order["status"] == "filled" and order["quoteFilled"] == "50"
    assert order["fee"] == "0.01"  # taker 0.2 % of 4.00 in the base asset, 2 decimals
    assert await balances(client, buyer) == {"USDT": ("950", "0"), base: ("3.99", "0")}
    assert await balances(client, seller) == {"USDT": ("49.95", "0"), base: ("90", "6")}
    ticker = (await client.get(f"{API}/ticker/{symbol}")).json()
    assert ticker["lastPrice"] == "12.5" and ticker["count"] == 1
    assert (await client.get(f"{API}/orderbook/{symbol}")).json()["asks"] == [["12.5", "6"]]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"baseAsset": "NOPE", "symbol": "NOPE-BTC"}, "UNKNOWN_ASSET"),
        ({"symbol": "BTC-USDT"}, "INVALID_MARKET"),  # symbol does not match the assets
        ({"tickSize": "0"}, "INVALID_MARKET"),
        ({"tickSize": "1e-2"}, "INVALID_MARKET"),
        ({"tickSize": "0.000000001"}, "INVALID_MARKET"),  # more decimals than BTC has
        ({"tickSize": "0.00000001"}, "INVALID_MARKET"),  # tick x lot is not a whole number of quote units
        ({"lotSize": "-1"}, "INVALID_MARKET"),
        ({"makerFee": "0.5"}, "INVALID_MARKET"),  # 50 %: a typo, not a fee
        ({"takerFee": "abc"}, "INVALID_MARKET"),
        ({"status": "closed"}, None),
        ({"tickSize": 0.01}, None),
        ({"unknown": 1}, None),
    ],
)
async def test_bad_market_is_400(
    client: Client, admin: User, changes: dict[str, Any], code: str | None
) -> None:
    before = (await client.get(f"{API}/markets")).json()
    body = market_body("ETH", "BTC", **changes)  # ETH-BTC: lot 0.01 ETH x tick 0.01 BTC is valid
    response = await client.post(f"{API}/admin/markets", json=body, headers=admin.headers)
    assert_error(response, 400, code)
    assert (await client.get(f"{API}/markets")).json() == before


async def test_fee_change_applies_to_the_next_trades(
    client: Client, admin: User, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    update = {
        "symbol": symbol,
        "baseAsset": base,
        "quoteAsset": "USDT",
        "tickSize": "0.01",
        "lotSize": "0.0001",
        "minQuantity": "0.0001",
        "minNotional": "5",
        "makerFee": "0.002",
        "takerFee": "0.005",
    }
    response = await client.post(f"{API}/admin/markets", json=update, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["makerFee"], response.json()["takerFee"]) == ("0.002", "0.005")
    seller = await funded_user(**{base: "1"})
    buyer = await funded_user(USDT="1000")
    maker = await placed(
        client, seller, symbol=symbol, side="sell", type="limit", quantity="0.01", price="30000"
    )
    taker = await placed(client, buyer, symbol=symbol, side="buy", type="market", quantity="0.01")
    assert taker["fee"] == "0.00005"  # 0.5 % of 0.01
    maker_after = (await client.get(f"{API}/orders/{maker['orderId']}", headers=seller.headers)).json()
    assert maker_after["fee"] == "0.6"  # 0.2 % of 300


async def test_halted_market_refuses_orders_but_cancels_work(
    client: Client, admin: User, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    user = await funded_user(USDT="1000", **{base: "1"})
    resting = await placed(
        client, user, symbol=symbol, side="buy", type="limit", quantity="0.01", price="20000"
    )
    other = await placed(
        client, user, symbol=symbol, side="sell", type="limit", quantity="0.01", price="40000"
    )
    halt = {
        "symbol": symbol,
        "baseAsset": base,
        "quoteAsset": "USDT",
        "tickSize": "0.01",
        "lotSize": "0.0001",
        "minQuantity": "0.0001",
        "minNotional": "5",
        "makerFee": "0.001",
        "takerFee": "0.001",
        "status": "halted",
    }
    response = await client.post(f"{API}/admin/markets", json=halt, headers=admin.headers)
    assert response.status_code == 200 and response.json()["status"] == "halted"
    listed = {m["symbol"]: m for m in (await client.get(f"{API}/markets")).json()["data"]}
    assert listed[symbol]["status"] == "halted"

    before = await state(client, user)
    for order in (
        {"side": "buy", "type": "limit", "quantity": "0.01", "price": "20000"},
        {"side": "sell", "type": "limit", "quantity": "0.01", "price": "20000"},  # would have crossed
        {"side": "buy", "type": "market", "quoteQuantity": "100"},
    ):
        assert_error(await place(client, user, symbol=symbol, **order), 422, "MARKET_HALTED")
    assert await state(client, user) == before

    canceled = await client.delete(f"{API}/orders/{resting['orderId']}", headers=user.headers)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    cancel_all = await client.delete(f"{API}/orders", params={"symbol": symbol}, headers=user.headers)
    assert cancel_all.status_code == 200
    assert [o["orderId"] for o in cancel_all.json()["data"]] == [other["orderId"]]
    assert await balances(client, user) == {"USDT": ("1000", "0"), base: ("1", "0")}

    resume = await client.post(
        f"{API}/admin/markets", json={**halt, "status": "trading"}, headers=admin.headers
    )
    assert resume.status_code == 200 and resume.json()["status"] == "trading"
    await placed(client, user, symbol=symbol, side="buy", type="limit", quantity="0.01", price="20000")


# ---------------------------------------------------------------- credits


async def test_credit_answers_the_new_balance(client: Client, admin: User) -> None:
    user = await new_user(client)
    response = await credit(client, admin, user.user_id, "BTC", "0.5")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["userId"] == user.user_id and body["asset"] == "BTC" and body["amount"] == "0.5"
    assert body["available"] == "0.5" and body["locked"] == "0"
    assert isinstance(body["creditId"], str) and body["creditId"]
    second = await credit(client, admin, user.user_id, "BTC", "0.25")
    assert second.json()["available"] == "0.75"
    assert second.json()["creditId"] != body["creditId"]  # no creditId given: each is new
    assert await balances(client, user) == {"BTC": ("0.75", "0")}


async def test_credit_is_idempotent_by_credit_id(client: Client, admin: User) -> None:
    user = await new_user(client)
    first = await credit(client, admin, user.user_id, "USDT", "100", creditId="ticket-42")
    assert first.status_code == 201, first.text
    assert first.json()["creditId"] == "ticket-42"
    repeat = await credit(client, admin, user.user_id, "USDT", "100", creditId="ticket-42")
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["available"] == "100"
    assert await balances(client, user) == {"USDT": ("100", "0")}
    # a creditId is spent for good, also for another user
    other = await new_user(client)
    elsewhere = await credit(client, admin, other.user_id, "USDT", "100", creditId="ticket-42")
    assert elsewhere.status_code in (200, 409)
    assert await balances(client, other) == {}


async def test_credit_id_reused_for_a_different_credit_is_409(client: Client, admin: User) -> None:
    user = await new_user(client)
    assert (await credit(client, admin, user.user_id, "USDT", "100", creditId="ticket-43")).status_code == 201
    different = await credit(client, admin, user.user_id, "USDT", "5000", creditId="ticket-43")
    assert await balances(client, user) == {"USDT": ("100", "0")}
    assert_error(different, 409)


async def test_runtime_markets_balances_and_orders_survive_a_restart(make_client: Any) -> None:
    from .conftest import make_admin

    async with make_client() as first:
        admin = await make_admin(first)
        assert (
            await first.post(f"{API}/admin/assets", json={"asset": "KEEP", "scale": 2}, headers=admin.headers)
        ).status_code == 201
        market = await first.post(f"{API}/admin/markets", json=market_body("KEEP"), headers=admin.headers)
        assert market.status_code == 201
        user = await new_user(first)
        assert (await credit(first, admin, user.user_id, "USDT", "100", creditId="keep-1")).status_code == 201
        order = await placed(
            first, user, symbol="KEEP-USDT", side="buy", type="limit", quantity="1", price="10"
        )
        before = await state(first, user)
        markets_before = (await first.get(f"{API}/markets")).json()
    async with make_client() as second:
        assert (await second.get(f"{API}/markets")).json() == markets_before
        assert await state(second, user) == before  # the access token is still valid, too
        assert (
            await credit(second, admin, user.user_id, "USDT", "100", creditId="keep-1")
        ).status_code == 200
        assert await balances(second, user) == {"USDT": ("90", "10")}
        canceled = await second.delete(f"{API}/orders/{order['orderId']}", headers=user.headers)
        assert canceled.json()["status"] == "canceled"
        book = (await second.get(f"{API}/orderbook/KEEP-USDT")).json()
        assert book["bids"] == []
