"""Trading over HTTP: placing, filling, canceling, listing and reading orders; balances; fills.

Each test trades on a market of its own (``new_market``) so the shared app's books do not
mix; fees are 0.1 % maker and taker; the buyer pays its fee in the base asset, the seller in
the quote asset.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from .conftest import FundedUser, NewMarket
from .support import API, User, all_orders, assert_error, balances, place, placed, state

pytestmark = pytest.mark.asyncio(loop_scope="module")

Client = AsyncTestClient[Any]

ORDER_FIELDS = {
    "orderId",
    "clientOrderId",
    "symbol",
    "side",
    "type",
    "timeInForce",
    "postOnly",
    "status",
    "price",
    "quantity",
    "filledQuantity",
    "remainingQuantity",
    "averagePrice",
    "quoteFilled",
    "fee",
    "feeAsset",
    "fills",
    "createdAt",
    "updatedAt",
}
FILL_FIELDS = {"tradeId", "price", "quantity", "fee", "feeAsset", "liquidity", "time"}


def base_of(symbol: str) -> str:
    return symbol.split("-")[0]


async def limit(
    client: Client, user: User, symbol: str, side: str, quantity: str, price: str, **extra: Any
) -> dict[str, Any]:
    return await placed(
        client, user, symbol=symbol, side=side, type="limit", quantity=quantity, price=price, **extra
    )


async def get_order(client: Client, user: User, order_id: int) -> dict[str, Any]:
    response = await client.get(f"{API}/orders/{order_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# ---------------------------------------------------------------- limit orders


async def test_limit_order_rests_and_holds_the_quote(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    buyer = await funded_user(USDT="1000")
    order = await limit(client, buyer, symbol, "buy", "0.01", "30000", clientOrderId="rest-1")
    assert set(order) >= ORDER_FIELDS
    assert order["symbol"] == symbol
    assert order["side"] == "buy"
    assert order["type"] == "limit"
    assert order["timeInForce"] == "GTC"
    assert order["postOnly"] is False
    assert order["status"] == "new"
    assert order["clientOrderId"] == "rest-1"
    assert order["price"] == "30000"
    assert order["quantity"] == "0.01"
    assert order["filledQuantity"] == "0"
    assert order["remainingQuantity"] == "0.01"
    assert order["averagePrice"] is None
    assert order["quoteFilled"] == "0"
    assert order["fee"] == "0"
    assert order["feeAsset"] == base_of(symbol)
    assert order["fills"] == []
    assert isinstance(order["orderId"], int)
    assert isinstance(order["createdAt"], int) and order["updatedAt"] >= order["createdAt"]
    assert (await balances(client, buyer))["USDT"] == ("700", "300")
    assert await get_order(client, buyer, order["orderId"]) == order


async def test_crossing_limit_order_fills_at_the_maker_price(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = base_of(symbol)
    seller = await funded_user(**{base: "1"})
    buyer = await funded_user(USDT="1000")
    maker = await limit(client, seller, symbol, "sell", "0.01", "30000")
    assert (await balances(client, seller))[base] == ("0.99", "0.01")

    taker = await limit(client, buyer, symbol, "buy", "0.004", "30100")
    assert taker["status"] == "filled"
    assert taker["filledQuantity"] == "0.004"
    assert taker["remainingQuantity"] == "0"
    assert taker["averagePrice"] == "30000"
    assert taker["quoteFilled"] == "120"
    assert taker["fee"] == "0.000004"
    assert taker["feeAsset"] == base
    (fill,) = taker["fills"]
    assert set(fill) == FILL_FIELDS
    assert fill["price"] == "30000"
    assert fill["quantity"] == "0.004"
    assert fill["fee"] == "0.000004"
    assert fill["feeAsset"] == base
    assert fill["liquidity"] == "taker"
    assert isinstance(fill["tradeId"], int) and isinstance(fill["time"], int)

    # the buyer paid 120 (not the 120.4 its limit allowed) and received 0.004 less the fee
    assert await balances(client, buyer) == {"USDT": ("880", "0"), base: ("0.003996", "0")}
    # the seller received 120 less 0.12 and still offers 0.006
    assert await balances(client, seller) == {"USDT": ("119.88", "0"), base: ("0.99", "0.006")}

    resting = await get_order(client, seller, maker["orderId"])
    assert resting["status"] == "partially_filled"
    assert resting["filledQuantity"] == "0.004"
    assert resting["remainingQuantity"] == "0.006"
    assert resting["fee"] == "0.12" and resting["feeAsset"] == "USDT"
    (maker_fill,) = resting["fills"]
    assert maker_fill["liquidity"] == "maker"
    assert maker_fill["tradeId"] == fill["tradeId"]
    assert maker_fill["fee"] == "0.12"
    # what was answered at placement is what is read back
    assert await get_order(client, buyer, taker["orderId"]) == taker


async def test_price_time_priority(client: Client, new_market: NewMarket, funded_user: FundedUser) -> None:
    symbol = await new_market()
    base = base_of(symbol)
    first, second, better = [await funded_user(**{base: "1"}) for _ in range(3)]
    a = await limit(client, first, symbol, "sell", "0.01", "30000")
    b = await limit(client, second, symbol, "sell", "0.01", "30000")
    c = await limit(client, better, symbol, "sell", "0.01", "29990")
    buyer = await funded_user(USDT="1000")
    taker = await limit(client, buyer, symbol, "buy", "0.015", "30000")
    assert [f["price"] for f in taker["fills"]] == ["29990", "30000"]
    assert (await get_order(client, better, c["orderId"]))["status"] == "filled"
    assert (await get_order(client, first, a["orderId"]))["filledQuantity"] == "0.005"
    assert (await get_order(client, second, b["orderId"]))["filledQuantity"] == "0"


# ---------------------------------------------------------------- market orders


async def book_with_two_asks(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> tuple[str, User]:
    symbol = await new_market()
    seller = await funded_user(**{base_of(symbol): "1"})
    await limit(client, seller, symbol, "sell", "0.01", "30000")
    await limit(client, seller, symbol, "sell", "0.01", "30100")
    return symbol, seller


async def test_market_buy_by_quantity_walks_the_book(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol, _ = await book_with_two_asks(client, new_market, funded_user)
    buyer = await funded_user(USDT="1000")
    order = await placed(client, buyer, symbol=symbol, side="buy", type="market", quantity="0.015")
    assert order["status"] == "filled"
    assert order["type"] == "market"
    assert order["price"] is None
    assert [(f["price"], f["quantity"]) for f in order["fills"]] == [("30000", "0.01"), ("30100", "0.005")]
    assert order["quoteFilled"] == "450.5"
    assert order["averagePrice"] == "30033.333333"  # 450.5 / 0.015, rounded down
    assert order["fee"] == "0.000015"
    assert await balances(client, buyer) == {"USDT": ("549.5", "0"), base_of(symbol): ("0.014985", "0")}


async def test_market_buy_by_quote_quantity_spends_at_most_the_budget(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol, _ = await book_with_two_asks(client, new_market, funded_user)
    buyer = await funded_user(USDT="1000")
    order = await placed(client, buyer, symbol=symbol, side="buy", type="market", quoteQuantity="100")
    assert order["status"] == "filled"
    # 100 / 30000 = 0.00333.., in whole lots of 0.0001: 0.0033 for 99
    assert order["filledQuantity"] == "0.0033"
    assert order["quoteFilled"] == "99"
    assert order["quantity"] is None
    assert await balances(client, buyer) == {"USDT": ("901", "0"), base_of(symbol): ("0.0032967", "0")}


async def test_market_sell_by_quantity(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = base_of(symbol)
    bidder = await funded_user(USDT="1000")
    await limit(client, bidder, symbol, "buy", "0.01", "30000")
    await limit(client, bidder, symbol, "buy", "0.01", "29000")
    seller = await funded_user(**{base: "1"})
    order = await placed(client, seller, symbol=symbol, side="sell", type="market", quantity="0.015")
    assert order["status"] == "filled"
    assert [(f["price"], f["quantity"]) for f in order["fills"]] == [("30000", "0.01"), ("29000", "0.005")]
    assert order["quoteFilled"] == "445"
    assert order["fee"] == "0.445" and order["feeAsset"] == "USDT"
    assert await balances(client, seller) == {"USDT": ("444.555", "0"), base: ("0.985", "0")}


async def test_market_order_on_an_empty_book_expires_without_effect(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    buyer = await funded_user(USDT="1000")
    order = await placed(client, buyer, symbol=symbol, side="buy", type="market", quantity="0.01")
    assert order["status"] == "expired"
    assert order["fills"] == [] and order["filledQuantity"] == "0"
    assert await balances(client, buyer) == {"USDT": ("1000", "0")}


# ---------------------------------------------------------------- time in force and post-only


async def test_ioc_fills_what_it_can_and_expires_the_rest(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol, _ = await book_with_two_asks(client, new_market, funded_user)
    buyer = await funded_user(USDT="1000")
    order = await limit(client, buyer, symbol, "buy", "0.02", "30000", timeInForce="IOC")
    assert order["timeInForce"] == "IOC"
    assert order["status"] == "expired"
    assert order["filledQuantity"] == "0.01"
    assert order["remainingQuantity"] == "0.01"
    assert await balances(client, buyer) == {"USDT": ("700", "0"), base_of(symbol): ("0.00999", "0")}
    book = (await client.get(f"{API}/orderbook/{symbol}")).json()
    assert book["bids"] == [] and book["asks"] == [["30100", "0.01"]]


async def test_fok_fills_completely_or_not_at_all(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol, seller = await book_with_two_asks(client, new_market, funded_user)
    buyer = await funded_user(USDT="1000")
    before = await state(client, buyer, seller)
    book_before = (await client.get(f"{API}/orderbook/{symbol}")).json()
    killed = await limit(client, buyer, symbol, "buy", "0.02", "30000", timeInForce="FOK")
    assert killed["status"] == "expired"
    assert killed["fills"] == [] and killed["filledQuantity"] == "0"
    assert (await balances(client, buyer)) == before[0][0]
    assert (await balances(client, seller)) == before[1][0]
    assert (await client.get(f"{API}/orderbook/{symbol}")).json()["asks"] == book_before["asks"]

    filled = await limit(client, buyer, symbol, "buy", "0.02", "30100", timeInForce="FOK")
    assert filled["status"] == "filled"
    assert filled["filledQuantity"] == "0.02"


async def test_post_only(client: Client, new_market: NewMarket, funded_user: FundedUser) -> None:
    symbol, seller = await book_with_two_asks(client, new_market, funded_user)
    buyer = await funded_user(USDT="1000")
    before = await state(client, buyer, seller)
    response = await place(
        client, buyer, symbol=symbol, side="buy", type="limit", quantity="0.01", price="30000", postOnly=True
    )
    assert_error(response, 422, "POST_ONLY_WOULD_TAKE")
    assert await state(client, buyer, seller) == before
    assert len(await all_orders(client, buyer)) == 0

    maker = await limit(client, buyer, symbol, "buy", "0.01", "29999.99", postOnly=True)
    assert maker["status"] == "new" and maker["postOnly"] is True


@pytest.mark.parametrize(
    "order",
    [
        {"side": "buy", "type": "limit", "quantity": "0.04", "price": "30000"},  # 1200 > 1000
        {"side": "buy", "type": "market", "quoteQuantity": "1000.01"},
        {"side": "sell", "type": "limit", "quantity": "1.0001", "price": "30000"},
        {"side": "sell", "type": "market", "quantity": "1.0001"},
    ],
)
async def test_insufficient_funds_is_422_and_changes_nothing(
    client: Client, new_market: NewMarket, funded_user: FundedUser, order: dict[str, str]
) -> None:
    symbol, seller = await book_with_two_asks(client, new_market, funded_user)
    bidder = await funded_user(USDT="1000")
    await limit(client, bidder, symbol, "buy", "0.01", "29000")
    user = await funded_user(USDT="1000", **{base_of(symbol): "1"})
    before = await state(client, user, seller, bidder)
    assert_error(await place(client, user, symbol=symbol, **order), 422, "INSUFFICIENT_FUNDS")
    assert await state(client, user, seller, bidder) == before


async def test_funds_held_by_open_orders_are_not_available(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    buyer = await funded_user(USDT="1000")
    await limit(client, buyer, symbol, "buy", "0.03", "30000")  # holds 900
    assert (await balances(client, buyer))["USDT"] == ("100", "900")
    before = await state(client, buyer)
    response = await place(
        client, buyer, symbol=symbol, side="buy", type="limit", quantity="0.004", price="30000"
    )
    assert_error(response, 422, "INSUFFICIENT_FUNDS")
    assert await state(client, buyer) == before


# ---------------------------------------------------------------- cancel


async def test_cancel_releases_the_hold_and_repeating_it_answers_the_final_state(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    buyer = await funded_user(USDT="1000")
    order = await limit(client, buyer, symbol, "buy", "0.01", "30000")
    response = await client.delete(f"{API}/orders/{order['orderId']}", headers=buyer.headers)
    assert response.status_code == 200, response.text
    canceled = response.json()
    assert canceled["orderId"] == order["orderId"]
    assert canceled["status"] == "canceled"
    assert canceled["remainingQuantity"] == "0.01"
    assert await balances(client, buyer) == {"USDT": ("1000", "0")}
    assert (await client.get(f"{API}/orderbook/{symbol}")).json()["bids"] == []

    again = await client.delete(f"{API}/orders/{order['orderId']}", headers=buyer.headers)
    assert again.status_code == 200
    assert again.json()["status"] == "canceled"
    assert await balances(client, buyer) == {"USDT": ("1000", "0")}


async def test_cancel_of_a_filled_order_returns_it_filled(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol, seller = await book_with_two_asks(client, new_market, funded_user)
    buyer = await funded_user(USDT="1000")
    order = await limit(client, buyer, symbol, "buy", "0.01", "30000")
    assert order["status"] == "filled"
    before = await state(client, buyer, seller)
    response = await client.delete(f"{API}/orders/{order['orderId']}", headers=buyer.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "filled"
    assert body["fills"] == order["fills"]
    assert await state(client, buyer, seller) == before


async def test_cancel_of_a_partially_filled_order(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = base_of(symbol)
    seller = await funded_user(**{base: "1"})
    buyer = await funded_user(USDT="1000")
    maker = await limit(client, seller, symbol, "sell", "0.01", "30000")
    await limit(client, buyer, symbol, "buy", "0.004", "30000")
    response = await client.delete(f"{API}/orders/{maker['orderId']}", headers=seller.headers)
    body = response.json()
    assert body["status"] == "canceled"
    assert body["filledQuantity"] == "0.004"
    assert len(body["fills"]) == 1
    assert (await balances(client, seller))[base] == ("0.996", "0")


async def test_other_users_orders_are_404_and_untouched(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    owner = await funded_user(USDT="1000")
    intruder = await funded_user(USDT="1000")
    order = await limit(client, owner, symbol, "buy", "0.01", "30000", clientOrderId="mine")
    before = await state(client, owner, intruder)
    order_id = order["orderId"]
    get = await client.get(f"{API}/orders/{order_id}", headers=intruder.headers)
    missing = await client.get(f"{API}/orders/{order_id + 1_000_000}", headers=intruder.headers)
    assert assert_error(get, 404, "ORDER_NOT_FOUND")["message"].replace(str(order_id), "N") == (
        assert_error(missing, 404, "ORDER_NOT_FOUND")["message"].replace(str(order_id + 1_000_000), "N")
    )
    assert_error(
        await client.delete(f"{API}/orders/{order_id}", headers=intruder.headers), 404, "ORDER_NOT_FOUND"
    )
    by_client_id = await client.get(
        f"{API}/orders", params={"clientOrderId": "mine"}, headers=intruder.headers
    )
    assert_error(by_client_id, 404, "ORDER_NOT_FOUND")
    # cancel-all of the intruder cancels nothing of the owner
    cancel_all = await client.delete(f"{API}/orders", params={"symbol": symbol}, headers=intruder.headers)
    assert cancel_all.status_code == 200 and cancel_all.json()["data"] == []
    assert await state(client, owner, intruder) == before
    assert (await get_order(client, owner, order_id))["status"] == "new"


async def test_unknown_order_ids(client: Client, funded_user: FundedUser) -> None:
    user = await funded_user()
    for order_id in ("999999999", "0", "-1", str(2**63 - 1), str(2**63), "99999999999999999999999"):
        assert_error(
            await client.get(f"{API}/orders/{order_id}", headers=user.headers), 404, "ORDER_NOT_FOUND"
        )
        assert_error(
            await client.delete(f"{API}/orders/{order_id}", headers=user.headers), 404, "ORDER_NOT_FOUND"
        )
    for order_id in ("abc", "1.5"):
        response = await client.get(f"{API}/orders/{order_id}", headers=user.headers)
        assert response.status_code in (400, 404)
        assert_error(response, response.status_code)


async def test_cancel_all_cancels_only_the_callers_orders_on_that_symbol(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol, other_symbol = await new_market(), await new_market()
    user = await funded_user(USDT="10000")
    neighbour = await funded_user(USDT="1000")
    a = await limit(client, user, symbol, "buy", "0.01", "30000")
    b = await limit(client, user, symbol, "buy", "0.01", "29000")
    keep = await limit(client, user, other_symbol, "buy", "0.01", "30000")
    theirs = await limit(client, neighbour, symbol, "buy", "0.01", "28000")
    response = await client.delete(f"{API}/orders", params={"symbol": symbol}, headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["nextCursor"] is None
    assert sorted(o["orderId"] for o in body["data"]) == sorted([a["orderId"], b["orderId"]])
    assert {o["status"] for o in body["data"]} == {"canceled"}
    assert (await get_order(client, user, keep["orderId"]))["status"] == "new"
    assert (await get_order(client, neighbour, theirs["orderId"]))["status"] == "new"
    assert (await balances(client, user))["USDT"] == ("9700", "300")
    again = await client.delete(f"{API}/orders", params={"symbol": symbol}, headers=user.headers)
    assert again.status_code == 200 and again.json()["data"] == []


async def test_cancel_all_needs_a_known_symbol(client: Client, funded_user: FundedUser) -> None:
    user = await funded_user()
    assert_error(await client.delete(f"{API}/orders", headers=user.headers), 400)
    response = await client.delete(f"{API}/orders", params={"symbol": "NOPE-USDT"}, headers=user.headers)
    assert_error(response, 400, "UNKNOWN_SYMBOL")


# ---------------------------------------------------------------- reading orders


async def test_list_orders_paginates_newest_first_without_overlap(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    user = await funded_user(USDT="10000")
    ids = [(await limit(client, user, symbol, "buy", "0.001", str(20000 + i)))["orderId"] for i in range(5)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"symbol": symbol, "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(f"{API}/orders", params=params, headers=user.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"data", "nextCursor"}
        assert len(page["data"]) <= 2
        seen.extend(o["orderId"] for o in page["data"])
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert pages == 3
    assert seen == sorted(ids, reverse=True)


async def test_list_orders_status_filter(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    user = await funded_user(USDT="10000")
    open_order = await limit(client, user, symbol, "buy", "0.01", "30000")
    closed = await limit(client, user, symbol, "buy", "0.01", "29000")
    await client.delete(f"{API}/orders/{closed['orderId']}", headers=user.headers)

    async def ids(status: str | None) -> list[int]:
        params = {"symbol": symbol} | ({"status": status} if status else {})
        response = await client.get(f"{API}/orders", params=params, headers=user.headers)
        assert response.status_code == 200, response.text
        return [o["orderId"] for o in response.json()["data"]]

    assert await ids("open") == [open_order["orderId"]]
    assert await ids("closed") == [closed["orderId"]]
    assert await ids("all") == [closed["orderId"], open_order["orderId"]]
    assert await ids(None) == await ids("all")
    response = await client.get(f"{API}/orders", params={"status": "pending"}, headers=user.headers)
    assert_error(response, 400, "INVALID_STATUS")


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": -1}, {"limit": "x"}, {"cursor": "abc"}, {"cursor": "-1"}, {"symbol": "NOPE"}],
)
async def test_list_orders_bad_query_is_400(
    client: Client, funded_user: FundedUser, params: dict[str, Any]
) -> None:
    user = await funded_user()
    assert_error(await client.get(f"{API}/orders", params=params, headers=user.headers), 400)


async def test_list_orders_is_private(client: Client, new_market: NewMarket, funded_user: FundedUser) -> None:
    symbol = await new_market()
    owner, other = await funded_user(USDT="1000"), await funded_user()
    await limit(client, owner, symbol, "buy", "0.01", "30000")
    assert await all_orders(client, other) == []


async def test_get_order_by_client_order_id(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    user = await funded_user(USDT="1000")
    order = await limit(client, user, symbol, "buy", "0.01", "30000", clientOrderId="abc-123_X")
    response = await client.get(f"{API}/orders", params={"clientOrderId": "abc-123_X"}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json() == order
    missing = await client.get(f"{API}/orders", params={"clientOrderId": "nope"}, headers=user.headers)
    assert_error(missing, 404, "ORDER_NOT_FOUND")


async def test_client_order_id_makes_placement_idempotent(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    user = await funded_user(USDT="1000")
    body = {
        "symbol": symbol,
        "side": "buy",
        "type": "limit",
        "quantity": "0.01",
        "price": "30000",
        "clientOrderId": "once",
    }
    first = await client.post(f"{API}/orders", json=body, headers=user.headers)
    assert first.status_code == 201
    after_first = await state(client, user)

    retry = await client.post(f"{API}/orders", json=body, headers=user.headers)
    assert retry.status_code in (200, 201), retry.text
    assert retry.json() == first.json()
    assert await state(client, user) == after_first

    different = await client.post(f"{API}/orders", json={**body, "price": "29000"}, headers=user.headers)
    assert_error(different, 409, "DUPLICATE_CLIENT_ORDER_ID")
    other_side = await client.post(f"{API}/orders", json={**body, "side": "sell"}, headers=user.headers)
    assert_error(other_side, 409, "DUPLICATE_CLIENT_ORDER_ID")
    assert await state(client, user) == after_first

    # the same clientOrderId is free for another user
    other = await funded_user(USDT="1000")
    response = await client.post(f"{API}/orders", json=body, headers=other.headers)
    assert response.status_code == 201
    assert response.json()["orderId"] != first.json()["orderId"]


async def test_idempotent_retry_after_the_order_filled_returns_it_with_its_fills(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol, seller = await book_with_two_asks(client, new_market, funded_user)
    user = await funded_user(USDT="1000")
    body = {"symbol": symbol, "side": "buy", "type": "market", "quantity": "0.01", "clientOrderId": "mkt-1"}
    first = await client.post(f"{API}/orders", json=body, headers=user.headers)
    assert first.status_code == 201 and first.json()["status"] == "filled"
    before = await state(client, user, seller)
    retry = await client.post(f"{API}/orders", json=body, headers=user.headers)
    assert retry.status_code in (200, 201)
    assert retry.json() == first.json()
    assert await state(client, user, seller) == before


# ---------------------------------------------------------------- balances and fills


async def test_balances_follow_holds(client: Client, new_market: NewMarket, funded_user: FundedUser) -> None:
    symbol = await new_market()
    base = base_of(symbol)
    user = await funded_user(USDT="1000", **{base: "2"})
    assert await balances(client, user) == {"USDT": ("1000", "0"), base: ("2", "0")}
    buy = await limit(client, user, symbol, "buy", "0.01", "25000")
    sell = await limit(client, user, symbol, "sell", "0.5", "40000")
    assert await balances(client, user) == {"USDT": ("750", "250"), base: ("1.5", "0.5")}
    await client.delete(f"{API}/orders/{buy['orderId']}", headers=user.headers)
    assert await balances(client, user) == {"USDT": ("1000", "0"), base: ("1.5", "0.5")}
    await client.delete(f"{API}/orders/{sell['orderId']}", headers=user.headers)
    assert await balances(client, user) == {"USDT": ("1000", "0"), base: ("2", "0")}


async def test_account_trades_lists_fills_newest_first_with_pagination(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = base_of(symbol)
    seller = await funded_user(**{base: "1"})
    buyer = await funded_user(USDT="10000")
    for price in ("30000", "30001", "30002"):
        await limit(client, seller, symbol, "sell", "0.001", price)
    order = await placed(client, buyer, symbol=symbol, side="buy", type="market", quantity="0.003")
    assert len(order["fills"]) == 3

    first = await client.get(f"{API}/account/trades", params={"limit": 2}, headers=buyer.headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["data"]) == 2 and page["nextCursor"]
    second = await client.get(
        f"{API}/account/trades", params={"limit": 2, "cursor": page["nextCursor"]}, headers=buyer.headers
    )
    rest = second.json()
    assert len(rest["data"]) == 1 and rest["nextCursor"] is None
    rows = page["data"] + rest["data"]
    assert [r["tradeId"] for r in rows] == sorted((f["tradeId"] for f in order["fills"]), reverse=True)
    assert [r["price"] for r in rows] == ["30002", "30001", "30000"]
    row = rows[-1]
    assert set(row) >= {
        "tradeId",
        "orderId",
        "symbol",
        "side",
        "price",
        "quantity",
        "fee",
        "feeAsset",
        "liquidity",
        "time",
    }
    assert row["orderId"] == order["orderId"]
    assert row["symbol"] == symbol
    assert row["side"] == "buy"
    assert row["quantity"] == "0.001"
    assert row["quoteQuantity"] == "30"
    assert row["fee"] == "0.000001" and row["feeAsset"] == base
    assert row["liquidity"] == "taker"

    maker_rows = (await client.get(f"{API}/account/trades", headers=seller.headers)).json()["data"]
    assert {r["liquidity"] for r in maker_rows} == {"maker"}
    assert {r["side"] for r in maker_rows} == {"sell"}
    by_symbol = await client.get(f"{API}/account/trades", params={"symbol": "ETH-BTC"}, headers=buyer.headers)
    assert by_symbol.json()["data"] == []
    unknown = await client.get(f"{API}/account/trades", params={"symbol": "NOPE-USDT"}, headers=buyer.headers)
    assert_error(unknown, 400, "UNKNOWN_SYMBOL")


async def test_self_trade_is_prevented(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = base_of(symbol)
    user = await funded_user(USDT="1000", **{base: "1"})
    maker = await limit(client, user, symbol, "sell", "0.01", "30000")
    taker = await limit(client, user, symbol, "buy", "0.01", "30000")
    assert taker["fills"] == []
    assert (await get_order(client, user, maker["orderId"]))["status"] == "expired"  # expire_maker
    assert (await client.get(f"{API}/trades/{symbol}")).json()["data"] == []


async def test_client_order_id_stays_taken_after_the_order_ended(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    user = await funded_user(USDT="1000")
    body = {"symbol": symbol, "side": "buy", "type": "limit", "quantity": "0.01", "price": "30000"}
    first = await placed(client, user, **body, clientOrderId="ended")
    await client.delete(f"{API}/orders/{first['orderId']}", headers=user.headers)
    after_cancel = await state(client, user)
    retry = await place(client, user, **body, clientOrderId="ended")
    assert retry.status_code in (200, 201), retry.text
    assert retry.json()["orderId"] == first["orderId"]
    assert retry.json()["status"] == "canceled"
    different = await place(client, user, **{**body, "quantity": "0.02"}, clientOrderId="ended")
    assert_error(different, 409, "DUPLICATE_CLIENT_ORDER_ID")
    assert await state(client, user) == after_cancel


async def test_market_sell_by_quote_quantity(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = base_of(symbol)
    bidder = await funded_user(USDT="1000")
    await limit(client, bidder, symbol, "buy", "0.01", "30000")
    seller = await funded_user(**{base: "1"})
    order = await placed(client, seller, symbol=symbol, side="sell", type="market", quoteQuantity="150")
    assert order["status"] == "filled"
    assert order["filledQuantity"] == "0.005" and order["quoteFilled"] == "150"
    assert await balances(client, seller) == {"USDT": ("149.85", "0"), base: ("0.995", "0")}


async def test_list_limit_above_the_maximum_is_capped(client: Client, funded_user: FundedUser) -> None:
    user = await funded_user()
    response = await client.get(f"{API}/orders", params={"limit": 100_000}, headers=user.headers)
    assert response.status_code == 200 and response.json() == {"data": [], "nextCursor": None}
    trades = await client.get(f"{API}/account/trades", params={"limit": 100_000}, headers=user.headers)
    assert trades.status_code == 200 and trades.json() == {"data": [], "nextCursor": None}
    for params in ({"cursor": "abc"}, {"limit": 0}):
        assert_error(await client.get(f"{API}/account/trades", params=params, headers=user.headers), 400)
