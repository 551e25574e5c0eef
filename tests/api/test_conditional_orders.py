"""Stop and take-profit orders over HTTP: placed untriggered with their funds held, listed
as open but absent from the public book, triggered by a trade at their stop price, canceled
like any open order; a stop the last price already reached is refused with 422."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from .conftest import FundedUser, NewMarket
from .support import API, User, assert_error, balances, placed

pytestmark = pytest.mark.asyncio(loop_scope="module")

Client = AsyncTestClient[Any]


async def trade_at(client: Client, funded_user: FundedUser, symbol: str, price: str) -> None:
    """Two fresh users print one trade of 0.001 at ``price``."""
    base = symbol.split("-")[0]
    seller = await funded_user(**{base: "1"})
    buyer = await funded_user(USDT="100000")
    await placed(client, seller, symbol=symbol, side="sell", type="limit", quantity="0.001", price=price)
    taken = await placed(
        client,
        buyer,
        symbol=symbol,
        side="buy",
        type="limit",
        quantity="0.001",
        price=price,
        timeInForce="IOC",
    )
    assert taken["status"] == "filled", taken


async def order(client: Client, user: User, order_id: int) -> dict[str, Any]:
    response = await client.get(f"{API}/orders/{order_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_stop_limit_waits_held_and_unseen_then_acts_at_its_stop(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    await trade_at(client, funded_user, symbol, "30000")
    trader = await funded_user(**{base: "1"})
    stop = await placed(
        client,
        trader,
        symbol=symbol,
        side="sell",
        type="stop_limit",
        quantity="0.5",
        price="28900",
        stopPrice="29000",
        clientOrderId="protect-1",
    )
    assert stop["status"] == "untriggered"
    assert (stop["type"], stop["stopPrice"], stop["price"]) == ("stop_limit", "29000", "28900")
    assert (await balances(client, trader))[base] == ("0.5", "0.5")
    book = (await client.get(f"{API}/orderbook/{symbol}")).json()
    assert all(price != "28900" for price, _ in book["asks"])
    listed = (await client.get(f"{API}/orders", params={"status": "open"}, headers=trader.headers)).json()
    assert stop["orderId"] in [o["orderId"] for o in listed["data"]]

    await trade_at(client, funded_user, symbol, "29500")
    assert (await order(client, trader, stop["orderId"]))["status"] == "untriggered"
    await trade_at(client, funded_user, symbol, "29000")  # reaches the stop: rests at 28900
    now = await order(client, trader, stop["orderId"])
    assert now["status"] == "new" and now["stopPrice"] == "29000"
    book = (await client.get(f"{API}/orderbook/{symbol}")).json()
    assert ["28900", "0.5"] in book["asks"]


async def test_a_take_profit_market_buy_spends_its_quote_and_cancel_frees_an_untriggered_one(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    await trade_at(client, funded_user, symbol, "30000")
    trader = await funded_user(USDT="1000")
    take = await placed(
        client,
        trader,
        symbol=symbol,
        side="buy",
        type="take_profit_market",
        quoteQuantity="300",
        stopPrice="25000",
    )
    spare = await placed(
        client,
        trader,
        symbol=symbol,
        side="buy",
        type="take_profit_market",
        quoteQuantity="300",
        stopPrice="20000",
    )
    assert (await balances(client, trader))["USDT"] == ("400", "600")
    canceled = await client.delete(f"{API}/orders/{spare['orderId']}", headers=trader.headers)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert (await balances(client, trader))["USDT"] == ("700", "300")

    seller = await funded_user(**{base: "1"})
    await placed(client, seller, symbol=symbol, side="sell", type="limit", quantity="0.1", price="25000")
    await trade_at(client, funded_user, symbol, "25000")  # the print at 25000 triggers it
    done = await order(client, trader, take["orderId"])
    assert done["status"] == "filled", done
    assert done["quantity"] is None and done["filledQuantity"] == "0.012"
    assert (await balances(client, trader))["USDT"] == ("700", "0")
    assert (await balances(client, trader))[base] == ("0.011988", "0")  # 0.1 % fee in the base


async def test_a_stop_the_last_price_already_reached_is_refused(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    await trade_at(client, funded_user, symbol, "30000")
    trader = await funded_user(**{base: "1"})
    before = await balances(client, trader)
    response = await client.post(
        f"{API}/orders",
        json={
            "symbol": symbol,
            "side": "sell",
            "type": "stop_market",
            "quantity": "0.1",
            "stopPrice": "30500",
        },
        headers=trader.headers,
    )
    assert_error(response, 422, "STOP_WOULD_TRIGGER")
    assert await balances(client, trader) == before


async def test_a_trailing_stop_follows_the_price_up_and_shows_its_stop(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    await trade_at(client, funded_user, symbol, "30000")
    trader = await funded_user(**{base: "1"})
    order = await placed(
        client, trader, symbol=symbol, side="sell", type="trailing_stop", quantity="0.1", trailingPercent="1"
    )
    assert (order["status"], order["stopPrice"], order["trailingPercent"]) == ("untriggered", "29700", "1")
    await trade_at(client, funded_user, symbol, "31000")
    assert (await order_of(client, trader, order["orderId"]))["stopPrice"] == "30690"
    await trade_at(client, funded_user, symbol, "30800")
    assert (await order_of(client, trader, order["orderId"]))["stopPrice"] == "30690"  # never down


async def order_of(client: Client, user: User, order_id: int) -> dict[str, Any]:
    return await order(client, user, order_id)


async def test_an_oco_list_holds_once_and_canceling_one_cancels_both(
    client: Client, new_market: NewMarket, funded_user: FundedUser
) -> None:
    symbol = await new_market()
    base = symbol.split("-")[0]
    await trade_at(client, funded_user, symbol, "30000")
    trader = await funded_user(**{base: "1"})
    body = {"symbol": symbol, "side": "sell", "quantity": "0.5", "price": "33000", "stopPrice": "28000"}
    response = await client.post(f"{API}/orders/oco", json=body, headers=trader.headers)
    assert response.status_code == 201, response.text
    listed = response.json()
    limit, stop = listed["orders"]
    assert listed["listId"] == limit["orderId"]
    assert (limit["type"], limit["status"], limit["postOnly"]) == ("limit", "new", True)
    assert (stop["type"], stop["status"], stop["stopPrice"]) == ("stop_market", "untriggered", "28000")
    assert limit["linkedOrderId"] == stop["orderId"] and stop["linkedOrderId"] == limit["orderId"]
    assert (await balances(client, trader))[base] == ("0.5", "0.5")
    canceled = await client.delete(f"{API}/orders/{stop['orderId']}", headers=trader.headers)
    assert canceled.status_code == 200
    assert (await order(client, trader, limit["orderId"]))["status"] == "canceled"
    assert (await balances(client, trader))[base] == ("1", "0")
    bad = await client.post(f"{API}/orders/oco", json={**body, "price": "27000"}, headers=trader.headers)
    assert_error(bad, 400, "INVALID_PRICE")
