"""Trailing stops: the stop follows the best price since activation at a fixed distance or a
percentage, only in the trader's favour, and acts as a stop-market when a trade reaches it."""

from __future__ import annotations

import pytest

from cambist.core.checks import check_invariants
from cambist.core.commands import PlaceOrder
from cambist.core.events import Outcome
from cambist.core.exchange import ExchangeCore
from cambist.core.types import OrderStatus, OrderType, RejectCode, Side, TimeInForce

from .support import SYMBOL, Harness, fingerprint, make_harness


def trailing(h: Harness, account: int, side: str, **fields: object) -> Outcome:
    values: dict[str, object] = {
        "account_id": account,
        "symbol": SYMBOL,
        "side": Side(side),
        "order_type": OrderType.TRAILING_STOP,
    }
    values.update(fields)
    return h.apply(PlaceOrder(**values))  # type: ignore[arg-type]


def print_at(h: Harness, price: str) -> None:
    """Accounts 8 and 9 trade 0.01 at ``price`` (8 may meet a resting bid there first)."""
    h.fund(8, btc="10", usdt="10000000")
    h.fund(9, btc="10", usdt="10000000")
    sold = h.limit(8, "sell", price, "0.01")
    taken = h.limit(9, "buy", price, "0.01", tif=TimeInForce.IOC)
    assert h.usdt(price) in [t.price for t in (*sold.trades, *taken.trades)]


def stop_of(h: Harness, order_id: int) -> int | None:
    return h.core.orders[order_id].stop_price


def test_a_sell_trails_the_highest_price_and_acts_when_it_falls_back_by_the_offset() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    print_at(h, "100")
    placed = trailing(h, 1, "sell", quantity=h.btc("0.5"), trailing_offset=h.usdt("5"))
    assert placed.reject is None and placed.order is not None
    order_id = placed.order.order_id
    assert placed.order.status is OrderStatus.UNTRIGGERED and placed.order.stop_price == h.usdt("95")
    assert h.balance(1, "BTC") == (h.btc("0.5"), h.btc("0.5"))
    print_at(h, "110")
    assert stop_of(h, order_id) == h.usdt("105")  # up with the price
    print_at(h, "107")
    assert stop_of(h, order_id) == h.usdt("105")  # never down
    h.fund(3, usdt="100000")
    assert h.limit(3, "buy", "104", "1").reject is None
    print_at(h, "105")  # reaches the stop: sells 0.5 into the bid at 104
    assert order_id not in h.core.orders
    assert h.balance(1, "BTC") == (h.btc("0.5"), 0)
    check_invariants(h.core)


def test_a_buy_by_percent_waits_for_its_activation_then_trails_the_lowest_price() -> None:
    h = make_harness()
    h.fund(1, usdt="1000")
    print_at(h, "100")
    placed = trailing(
        h, 1, "buy", quote_quantity=h.usdt("200"), trailing_ppm=100_000, activation_price=h.usdt("90")
    )  # 10 %
    assert placed.reject is None and placed.order is not None
    order_id = placed.order.order_id
    assert placed.order.stop_price is None  # not active yet
    print_at(h, "95")
    assert stop_of(h, order_id) is None
    print_at(h, "90")  # activates, trails from 90
    assert stop_of(h, order_id) == h.usdt("99")
    print_at(h, "80")
    assert stop_of(h, order_id) == h.usdt("88")
    h.fund(3, btc="10")
    assert h.limit(3, "sell", "89", "5").reject is None
    print_at(h, "88")  # at the stop: buys 200 USDT worth at 89
    assert order_id not in h.core.orders
    assert h.balance(1, "USDT")[1] == 0
    check_invariants(h.core)


def test_pending_trailing_stops_survive_a_restart() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    print_at(h, "100")
    order_id = trailing(h, 1, "sell", quantity=h.btc("0.2"), trailing_offset=h.usdt("3")).order.order_id  # type: ignore[union-attr]
    print_at(h, "120")
    restored = ExchangeCore.restore(h.core.snapshot())
    assert restored.compute_state_hash() == h.core.state_hash()
    assert restored.orders[order_id].stop_price == h.usdt("117")
    check_invariants(restored)
    h.core = restored
    print_at(h, "117")
    assert order_id not in h.core.orders
    assert h.replay().compute_state_hash() == h.core.compute_state_hash()


@pytest.mark.parametrize(
    ("side", "fields", "code"),
    [
        ("sell", {"quantity": 10**7}, RejectCode.INVALID_ORDER),  # no distance
        (
            "sell",
            {"quantity": 10**7, "trailing_offset": 10**8, "trailing_ppm": 10_000},
            RejectCode.INVALID_ORDER,
        ),
        ("sell", {"quantity": 10**7, "trailing_offset": 10**8 + 1}, RejectCode.INVALID_PRICE),  # off tick
        ("sell", {"quantity": 10**7, "trailing_ppm": 500}, RejectCode.INVALID_ORDER),  # under 0.1 %
        ("sell", {"quantity": 10**7, "trailing_ppm": 300_000}, RejectCode.INVALID_ORDER),  # over 20 %
        ("sell", {"quantity": 10**7, "trailing_ppm": 10_000, "stop_price": 10**10}, RejectCode.INVALID_ORDER),
        ("buy", {"quantity": 10**7, "trailing_ppm": 10_000}, RejectCode.INVALID_ORDER),  # buys by quote
        ("sell", {"quantity": 10**9, "trailing_ppm": 10_000}, RejectCode.INSUFFICIENT_FUNDS),
    ],
)
def test_bad_trailing_stops_are_refused_and_change_nothing(
    side: str, fields: dict[str, object], code: RejectCode
) -> None:
    h = make_harness()
    h.fund(1, btc="1")
    before = fingerprint(h.core)
    outcome = trailing(h, 1, side, **fields)
    assert outcome.reject is code, outcome
    assert fingerprint(h.core) == before


def test_trailing_fields_on_other_orders_are_refused() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    outcome = h.apply(
        PlaceOrder(
            1,
            SYMBOL,
            Side.SELL,
            OrderType.LIMIT,
            quantity=h.btc("0.1"),
            price=h.usdt("100"),
            trailing_ppm=10_000,
        )
    )
    assert outcome.reject is RejectCode.INVALID_ORDER
