"""Iceberg orders: only a slice shows on the book; a used-up slice refills from the hidden
rest and the refill queues at the back of its level (losing time priority), while the whole
order's funds stay held. Takers, FOK checks and market orders reach the hidden part too."""

from __future__ import annotations

import pytest

from cambist.core.checks import check_invariants
from cambist.core.commands import AmendOrder, PlaceOrder
from cambist.core.events import Outcome
from cambist.core.exchange import ExchangeCore
from cambist.core.types import OrderType, RejectCode, Side, TimeInForce

from .support import SYMBOL, Harness, fingerprint, make_harness


def iceberg(
    h: Harness, account: int, side: str, limit: str, quantity: str, shown: str, **kw: object
) -> Outcome:
    fields: dict[str, object] = {
        "account_id": account,
        "symbol": SYMBOL,
        "side": Side(side),
        "order_type": OrderType.LIMIT,
        "price": h.usdt(limit),
        "quantity": h.btc(quantity),
        "iceberg_quantity": h.btc(shown),
    }
    fields.update(kw)
    return h.apply(PlaceOrder(**fields))  # type: ignore[arg-type]


def asks(h: Harness) -> list[tuple[int, int]]:
    book = h.core.markets[SYMBOL].book.asks
    return [(o.order_id, o.shown) for level in book.iter_levels() for o in level.orders.values()]


def test_only_the_slice_shows_while_the_whole_order_is_held() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    placed = iceberg(h, 1, "sell", "100", "0.5", "0.1")
    assert placed.reject is None and placed.order is not None
    assert placed.order.shown_remaining == h.btc("0.1")
    assert h.core.depth(SYMBOL, 10)[1] == [(h.usdt("100"), h.btc("0.1"))]
    assert h.balance(1, "BTC") == (h.btc("0.5"), h.btc("0.5"))
    check_invariants(h.core)


def test_a_used_up_slice_refills_at_the_back_of_its_level() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    h.fund(2, btc="1")
    h.fund(3, usdt="10000")
    ice = iceberg(h, 1, "sell", "100", "0.5", "0.1").order.order_id  # type: ignore[union-attr]
    plain = h.limit(2, "sell", "100", "0.2").order.order_id  # type: ignore[union-attr]
    taken = h.limit(3, "buy", "100", "0.15")
    assert [(t.maker_order_id, t.quantity) for t in taken.trades] == [
        (ice, h.btc("0.1")),
        (plain, h.btc("0.05")),
    ]
    assert asks(h) == [(plain, h.btc("0.15")), (ice, h.btc("0.1"))]  # the refill queued behind
    assert h.core.depth(SYMBOL, 10)[1] == [(h.usdt("100"), h.btc("0.25"))]
    # A taker larger than everything shown reaches the hidden rest, slice after slice.
    taken = h.limit(3, "buy", "100", "0.55")  # 0.4 of the iceberg and 0.15 of the plain order
    assert sum(t.quantity for t in taken.trades) == h.btc("0.55")
    assert ice not in h.core.orders and plain not in h.core.orders
    check_invariants(h.core)


def test_fok_and_market_orders_count_the_hidden_part() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    h.fund(3, usdt="10000")
    ice = iceberg(h, 1, "sell", "100", "0.6", "0.1").order.order_id  # type: ignore[union-attr]
    fok = h.limit(3, "buy", "100", "0.45", tif=TimeInForce.FOK)
    assert sum(t.quantity for t in fok.trades) == h.btc("0.45")
    market = h.market(3, "buy", quantity="0.15")
    assert market.order is not None and market.order.filled_quantity == h.btc("0.15")
    assert ice not in h.core.orders
    check_invariants(h.core)


def test_a_partly_used_slice_survives_a_restart() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    h.fund(2, btc="1")
    h.fund(3, usdt="10000")
    ice = iceberg(h, 1, "sell", "100", "0.5", "0.2").order.order_id  # type: ignore[union-attr]
    h.limit(2, "sell", "100", "0.1")
    h.limit(3, "buy", "100", "0.05")
    live = asks(h)
    assert live[0] == (ice, h.btc("0.15"))
    restored = ExchangeCore.restore(h.core.snapshot())
    book = restored.markets[SYMBOL].book.asks
    assert [(o.order_id, o.shown) for level in book.iter_levels() for o in level.orders.values()] == live
    assert restored.compute_state_hash() == h.core.state_hash()
    check_invariants(restored)
    assert h.replay().compute_state_hash() == h.core.compute_state_hash()


@pytest.mark.parametrize(
    ("shown", "fields", "code"),
    [
        ("0.5", {}, RejectCode.INVALID_QUANTITY),  # not less than the quantity
        ("0.00001", {}, RejectCode.INVALID_QUANTITY),  # off the lot
        ("0.1", {"time_in_force": TimeInForce.IOC}, RejectCode.INVALID_ORDER),
        ("0.1", {"order_type": OrderType.MARKET, "price": None}, RejectCode.INVALID_ORDER),
    ],
)
def test_bad_icebergs_are_refused_and_change_nothing(
    shown: str, fields: dict[str, object], code: RejectCode
) -> None:
    h = make_harness()
    h.fund(1, btc="1")
    before = fingerprint(h.core)
    assert iceberg(h, 1, "sell", "100", "0.5", shown, **fields).reject is code
    assert fingerprint(h.core) == before


def test_an_iceberg_is_not_amended() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    ice = iceberg(h, 1, "sell", "100", "0.5", "0.1").order.order_id  # type: ignore[union-attr]
    assert h.apply(AmendOrder(1, ice, quantity=h.btc("0.3"))).reject is RejectCode.INVALID_ORDER
