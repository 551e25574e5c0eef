"""PATCH /api/v1/orders/{orderId}: amend a resting order's quantity or price; GTD orders."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from .conftest import FundedUser, NewMarket
from .support import API, User, assert_error, balances, placed

pytestmark = pytest.mark.asyncio(loop_scope="module")

Client = AsyncTestClient[Any]


async def amend(client: Client, user: User, order_id: int, **body: str) -> Any:
    return await client.patch(f"{API}/orders/{order_id}", json=body, headers=user.headers)


async def test_reducing_keeps_the_place_and_repricing_trades_through_the_book(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    first_seller = await funded_user(**{base: "1"})
    second_seller = await funded_user(**{base: "1"})
    buyer = await funded_user(USDT="10000")
    common = {"symbol": symbol, "side": "sell", "type": "limit", "price": "100"}
    first = await placed(client, first_seller, **common, quantity="0.5")
    second = await placed(client, second_seller, **common, quantity="0.5")

    response = await amend(client, first_seller, first["orderId"], quantity="0.2")
    assert response.status_code == 200, response.text
    assert response.json()["quantity"] == "0.2" and response.json()["status"] == "new"
    assert (await balances(client, first_seller))[base] == ("0.8", "0.2")
    taken = await placed(client, buyer, symbol=symbol, side="buy", type="limit", price="100", quantity="0.3")
    assert [f["price"] for f in taken["fills"]] == ["100", "100"]
    first_now = (await client.get(f"{API}/orders/{first['orderId']}", headers=first_seller.headers)).json()
    assert first_now["status"] == "filled"  # still first in the queue after the reduction

    # The second seller's rest (0.4) moves to 99; a bid at 99.5 is crossed right away.
    bid = await placed(client, buyer, symbol=symbol, side="buy", type="limit", price="99.5", quantity="0.1")
    response = await amend(client, second_seller, second["orderId"], price="99")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["price"] == "99" and body["filledQuantity"] == "0.2" and body["status"] == "partially_filled"
    assert [f["price"] for f in body["fills"]] == ["100", "99.5"]
    bid_now = (await client.get(f"{API}/orders/{bid['orderId']}", headers=buyer.headers)).json()
    assert bid_now["status"] == "filled"


async def test_bad_amends_are_refused_and_change_nothing(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    seller = await funded_user(**{base: "1"})
    other = await funded_user(**{base: "1"})
    order = await placed(
        client, seller, symbol=symbol, side="sell", type="limit", price="100", quantity="0.5"
    )
    before = await balances(client, seller)
    order_id = order["orderId"]
    assert_error(await amend(client, other, order_id, quantity="0.1"), 404, "ORDER_NOT_FOUND")
    assert_error(await amend(client, seller, order_id), 400, "INVALID_ORDER")
    assert_error(await amend(client, seller, order_id, quantity="0.00001"), 400)
    assert_error(await amend(client, seller, order_id, price="100.001"), 400)
    assert_error(await amend(client, seller, order_id, quantity="5"), 422, "INSUFFICIENT_FUNDS")
    assert_error(await amend(client, seller, 10**12, quantity="0.1"), 404, "ORDER_NOT_FOUND")
    response = await client.patch(f"{API}/orders/{order_id}", json={"qty": "0.1"}, headers=seller.headers)
    assert_error(response, 400)
    assert await balances(client, seller) == before
    canceled = await client.delete(f"{API}/orders/{order_id}", headers=seller.headers)
    assert canceled.status_code == 200
    assert_error(await amend(client, seller, order_id, quantity="0.1"), 404, "ORDER_NOT_FOUND")


async def test_a_gtd_order_carries_its_expiry(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    seller = await funded_user(**{base: "1"})
    expire = 4_102_444_800_000  # 2100-01-01
    order = await placed(
        client,
        seller,
        symbol=symbol,
        side="sell",
        type="limit",
        price="100",
        quantity="0.1",
        timeInForce="GTD",
        expireTime=expire,
    )
    assert (order["timeInForce"], order["expireTime"], order["status"]) == ("GTD", expire, "new")
    fetched = (await client.get(f"{API}/orders/{order['orderId']}", headers=seller.headers)).json()
    assert fetched["expireTime"] == expire


async def test_an_iceberg_shows_only_its_slice(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    seller = await funded_user(**{base: "1"})
    order = await placed(
        client,
        seller,
        symbol=symbol,
        side="sell",
        type="limit",
        price="100",
        quantity="0.5",
        icebergQuantity="0.1",
    )
    assert order["icebergQuantity"] == "0.1" and order["quantity"] == "0.5"
    book = (await client.get(f"{API}/orderbook/{symbol}")).json()
    assert book["asks"] == [["100", "0.1"]]
    assert (await balances(client, seller))[base] == ("0.5", "0.5")
