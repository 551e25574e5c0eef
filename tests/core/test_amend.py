"""Amending a resting order: a smaller quantity keeps its place in the queue and frees what it
no longer needs; a new price or a larger quantity sends it to the back, holds what it now
needs and, at a price that crosses, trades first (cancel-replace in one step, same id)."""

from __future__ import annotations

import pytest

from cambist.core.checks import check_invariants
from cambist.core.commands import AmendOrder, PlaceOrder
from cambist.core.exchange import ExchangeCore
from cambist.core.types import OrderStatus, OrderType, RejectCode, Side

from .support import SYMBOL, Harness, fingerprint, make_harness


def amend(h: Harness, account: int, order_id: int, *, quantity: str | None = None, price: str | None = None):  # type: ignore[no-untyped-def]
    return h.apply(
        AmendOrder(
            account,
            order_id,
            quantity=None if quantity is None else h.btc(quantity),
            price=None if price is None else h.usdt(price),
        )
    )


def rest(h: Harness, account: int, side: str, price: str, quantity: str, **kw: object) -> int:
    outcome = h.limit(account, side, price, quantity, **kw)  # type: ignore[arg-type]
    assert outcome.reject is None and outcome.order is not None, outcome
    return outcome.order.order_id


def queue(h: Harness, side: str = "sell") -> list[tuple[int, int]]:
    book = h.core.markets[SYMBOL].book
    levels = book.asks if side == "sell" else book.bids
    return [(o.order_id, o.remaining) for level in levels.iter_levels() for o in level.orders.values()]


def test_a_smaller_quantity_keeps_the_place_in_the_queue_and_frees_the_rest() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    h.fund(2, btc="1")
    first = rest(h, 1, "sell", "100", "0.5")
    second = rest(h, 2, "sell", "100", "0.5")
    outcome = amend(h, 1, first, quantity="0.2")
    assert outcome.reject is None and outcome.order is not None
    assert outcome.order.quantity == h.btc("0.2") and outcome.order.priority < queue_priority(h, second)
    assert queue(h) == [(first, h.btc("0.2")), (second, h.btc("0.5"))]
    assert h.balance(1, "BTC") == (h.btc("0.8"), h.btc("0.2"))
    h.fund(3, usdt="1000")
    taken = h.limit(3, "buy", "100", "0.3")
    assert [t.maker_order_id for t in taken.trades] == [first, second]
    check_invariants(h.core)


def queue_priority(h: Harness, order_id: int) -> int:
    return h.core.orders[order_id].priority


def test_a_buy_reduced_after_a_partial_fill_holds_only_what_its_rest_needs() -> None:
    h = make_harness()
    h.fund(1, usdt="1000")
    h.fund(2, btc="1")
    bid = rest(h, 1, "buy", "100", "1")
    assert h.limit(2, "sell", "100", "0.4").trades
    assert amend(h, 1, bid, quantity="0.5").reject is None  # 0.4 filled, 0.1 left
    assert h.balance(1, "USDT") == (h.usdt("1000") - h.usdt("40") - h.usdt("10"), h.usdt("10"))
    assert amend(h, 1, bid, quantity="0.4").reject is RejectCode.INVALID_QUANTITY  # not above filled
    check_invariants(h.core)


def test_a_new_price_or_a_larger_quantity_goes_to_the_back() -> None:
    h = make_harness()
    h.fund(1, btc="2")
    h.fund(2, btc="1")
    first = rest(h, 1, "sell", "100", "0.5")
    second = rest(h, 2, "sell", "100", "0.5")
    assert amend(h, 1, first, quantity="0.6").reject is None
    assert queue(h) == [(second, h.btc("0.5")), (first, h.btc("0.6"))]
    assert h.balance(1, "BTC") == (h.btc("1.4"), h.btc("0.6"))
    assert amend(h, 1, first, price="99").reject is None
    assert queue(h) == [(first, h.btc("0.6")), (second, h.btc("0.5"))]  # better price, first again
    assert amend(h, 1, first, price="100").reject is None
    assert queue(h) == [(second, h.btc("0.5")), (first, h.btc("0.6"))]  # back at 100: behind
    check_invariants(h.core)


def test_a_price_that_crosses_trades_first_and_the_rest_rests_at_the_new_price() -> None:
    h = make_harness()
    h.fund(1, usdt="1000")
    h.fund(2, btc="1")
    bid = rest(h, 1, "buy", "90", "1")
    ask = rest(h, 2, "sell", "100", "0.3")
    outcome = amend(h, 1, bid, price="101")
    assert outcome.reject is None and outcome.order is not None
    assert [(t.maker_order_id, t.price, t.quantity) for t in outcome.trades] == [
        (ask, h.usdt("100"), h.btc("0.3"))
    ]
    assert outcome.order.status is OrderStatus.PARTIALLY_FILLED and outcome.order.price == h.usdt("101")
    assert queue(h, "buy") == [(bid, h.btc("0.7"))]
    # Holds 0.7 x 101 now; it paid 30 for what filled.
    assert h.balance(1, "USDT") == (h.usdt("1000") - h.usdt("30") - h.usdt("70.7"), h.usdt("70.7"))
    check_invariants(h.core)


@pytest.mark.parametrize(
    ("who", "changes", "code"),
    [
        ("foreign", {"quantity": "0.1"}, RejectCode.ORDER_NOT_FOUND),
        ("owner", {}, RejectCode.INVALID_ORDER),
        ("owner", {"quantity": "0.00001"}, RejectCode.INVALID_QUANTITY),  # off the lot
        ("owner", {"price": "100.001"}, RejectCode.INVALID_PRICE),
        ("owner", {"quantity": "50"}, RejectCode.INSUFFICIENT_FUNDS),
        ("owner", {"price": "100", "quantity": "1"}, RejectCode.POST_ONLY_WOULD_TAKE),
    ],
)
def test_a_refused_amend_changes_nothing(who: str, changes: dict[str, str], code: RejectCode) -> None:
    h = make_harness()
    h.fund(1, usdt="1000")
    h.fund(2, btc="1")
    rest(h, 2, "sell", "100", "0.5")
    bid = rest(h, 1, "buy", "95", "1", post_only=True)
    before = fingerprint(h.core)
    outcome = amend(h, 2 if who == "foreign" else 1, bid, **changes)
    assert outcome.reject is code, outcome
    assert fingerprint(h.core) == before


def test_finished_and_untriggered_orders_cannot_be_amended() -> None:
    h = make_harness()
    h.fund(1, usdt="1000", btc="1")
    h.fund(2, btc="1")
    ask = rest(h, 2, "sell", "100", "0.1")
    assert h.limit(1, "buy", "100", "0.1").trades  # fills the ask
    assert amend(h, 2, ask, quantity="0.05").reject is RejectCode.ORDER_NOT_FOUND
    stop = h.apply(
        PlaceOrder(
            1,
            SYMBOL,
            Side.SELL,
            OrderType.STOP_LIMIT,
            quantity=h.btc("0.1"),
            price=h.usdt("80"),
            stop_price=h.usdt("90"),
        )
    )
    assert stop.order is not None and stop.order.status is OrderStatus.UNTRIGGERED
    assert amend(h, 1, stop.order.order_id, price="85").reject is RejectCode.INVALID_ORDER


def test_orders_queued_by_one_command_restore_in_the_same_queue() -> None:
    """An amend that crosses, whose trade triggers a stop-limit that rests at the same price:
    both take this command's priority; the restored book queues them as the live one does."""
    h = make_harness()
    h.fund(1, usdt="1000")
    h.fund(2, usdt="1000")
    h.fund(3, btc="1")
    h.fund(4, usdt="1000")
    assert h.limit(3, "sell", "100", "0.1").reject is None
    assert h.limit(4, "buy", "100", "0.1").trades  # last price 100
    stop = h.apply(
        PlaceOrder(
            2,
            SYMBOL,
            Side.BUY,
            OrderType.STOP_LIMIT,
            quantity=h.btc("0.2"),
            price=h.usdt("101"),
            stop_price=h.usdt("101"),
        )
    ).order
    assert stop is not None
    bid = rest(h, 1, "buy", "90", "0.5")  # placed after the stop: a larger id
    assert bid > stop.order_id
    assert h.limit(3, "sell", "101", "0.1").reject is None
    assert amend(h, 1, bid, price="101").reject is None  # takes 0.1 at 101: triggers the stop
    live = queue(h, "buy")
    assert [oid for oid, _ in live] == [bid, stop.order_id]
    restored = ExchangeCore.restore(h.core.snapshot())
    book = restored.markets[SYMBOL].book.bids
    assert [(o.order_id, o.remaining) for lvl in book.iter_levels() for o in lvl.orders.values()] == live
    assert restored.compute_state_hash() == h.core.state_hash()
    assert h.replay().compute_state_hash() == h.core.compute_state_hash()
    check_invariants(restored)
