"""OCO lists: a post-only limit order and a stop for one quantity held once; the limit's
fill expires the stop, the stop's trigger expires the limit and takes the list's funds,
canceling either cancels both; across a restart too."""

from __future__ import annotations

import pytest

from cambist.core.checks import check_invariants
from cambist.core.commands import AmendOrder, PlaceOco
from cambist.core.events import Outcome
from cambist.core.exchange import ExchangeCore
from cambist.core.types import OrderStatus, RejectCode, Side, TimeInForce

from .support import SYMBOL, Harness, fingerprint, make_harness


def oco(
    h: Harness, account: int, side: str, quantity: str, limit: str, stop: str, stop_limit: str | None = None
) -> Outcome:
    return h.apply(
        PlaceOco(
            account,
            SYMBOL,
            Side(side),
            h.btc(quantity),
            h.usdt(limit),
            h.usdt(stop),
            None if stop_limit is None else h.usdt(stop_limit),
        )
    )


def print_at(h: Harness, price: str) -> None:
    h.fund(8, btc="10", usdt="10000000")
    h.fund(9, btc="10", usdt="10000000")
    sold = h.limit(8, "sell", price, "0.01")
    taken = h.limit(9, "buy", price, "0.01", tif=TimeInForce.IOC)
    assert h.usdt(price) in [t.price for t in (*sold.trades, *taken.trades)]


def legs(outcome: Outcome) -> tuple[int, int]:
    assert outcome.reject is None and outcome.order is not None, outcome
    (stop,) = outcome.orders
    assert outcome.order.linked_order_id == stop.order_id and stop.linked_order_id == outcome.order.order_id
    return outcome.order.order_id, stop.order_id


def status(h: Harness, order_id: int) -> OrderStatus | None:
    order = h.core.orders.get(order_id)
    return None if order is None else order.status


def test_a_sell_list_holds_once_and_a_fill_of_its_limit_expires_its_stop() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    print_at(h, "100")
    limit, stop = legs(oco(h, 1, "sell", "0.5", "110", "95", "94"))
    assert status(h, limit) is OrderStatus.NEW and status(h, stop) is OrderStatus.UNTRIGGERED
    assert h.balance(1, "BTC") == (h.btc("0.5"), h.btc("0.5"))  # held once for both
    check_invariants(h.core)
    h.changes()
    h.fund(3, usdt="10000")
    assert h.limit(3, "buy", "110", "0.2").trades  # the limit order trades, in part
    assert status(h, stop) is None and status(h, limit) is OrderStatus.PARTIALLY_FILLED
    views = {v.order_id: v.status for v in h.changes().orders}
    assert views[stop] is OrderStatus.EXPIRED
    assert h.balance(1, "BTC") == (h.btc("0.5"), h.btc("0.3"))
    print_at(h, "90")  # the stop is gone: nothing triggers
    assert status(h, limit) is OrderStatus.PARTIALLY_FILLED
    check_invariants(h.core)


def test_the_stop_triggering_expires_the_limit_and_takes_the_funds() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    h.fund(3, usdt="10000")
    print_at(h, "100")
    limit, stop = legs(oco(h, 1, "sell", "0.5", "110", "95"))  # a stop-market sell
    assert h.limit(3, "buy", "94", "1").reject is None
    print_at(h, "95")
    assert status(h, limit) is None and status(h, stop) is None
    assert h.core.depth(SYMBOL, 10)[1] == [] or all(
        p != h.usdt("110") for p, _ in h.core.depth(SYMBOL, 10)[1]
    )
    assert h.balance(1, "BTC") == (h.btc("0.5"), 0)  # sold 0.5 through the stop
    check_invariants(h.core)


def test_canceling_either_order_cancels_the_list() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    print_at(h, "100")
    limit, stop = legs(oco(h, 1, "sell", "0.5", "110", "95"))
    assert h.cancel(1, stop).reject is None
    assert status(h, limit) is None and h.balance(1, "BTC") == (h.btc("1"), 0)
    limit, stop = legs(oco(h, 1, "sell", "0.5", "110", "95"))
    assert h.cancel_all(1).reject is None
    assert status(h, limit) is None and status(h, stop) is None
    assert h.balance(1, "BTC") == (h.btc("1"), 0)
    check_invariants(h.core)


def test_a_buy_list_holds_what_its_dearer_order_needs_and_lets_go_after_a_fill() -> None:
    h = make_harness()
    h.fund(1, usdt="1000")
    print_at(h, "100")
    limit, stop = legs(oco(h, 1, "buy", "1", "90", "105", "106"))
    assert h.balance(1, "USDT") == (h.usdt("894"), h.usdt("106"))  # the stop-limit's 106
    h.fund(4, btc="1")
    assert h.limit(4, "sell", "90", "0.5").trades
    assert status(h, stop) is None and status(h, limit) is OrderStatus.PARTIALLY_FILLED
    assert h.balance(1, "USDT") == (h.usdt("1000") - h.usdt("45") - h.usdt("45"), h.usdt("45"))
    check_invariants(h.core)


def test_a_pending_list_survives_a_restart_and_triggers_once() -> None:
    h = make_harness()
    h.fund(1, usdt="1000")
    h.fund(4, btc="5")
    print_at(h, "100")
    limit, stop = legs(oco(h, 1, "buy", "1", "90", "105", "106"))
    restored = ExchangeCore.restore(h.core.snapshot())
    assert restored.compute_state_hash() == h.core.state_hash()
    check_invariants(restored)
    h.core = restored
    assert h.limit(4, "sell", "106", "2").reject is None
    print_at(h, "105")  # triggers the stop-limit buy at up to 106
    assert status(h, limit) is None and status(h, stop) is None
    assert h.balance(1, "BTC")[0] > 0 and h.balance(1, "USDT")[1] == 0
    assert h.replay().compute_state_hash() == h.core.compute_state_hash()
    check_invariants(h.core)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("sell", "0.5", "95", "110"), RejectCode.INVALID_PRICE),  # limit under the stop
        (("buy", "0.5", "110", "95", "96"), RejectCode.INVALID_PRICE),
        (("buy", "0.5", "90", "105"), RejectCode.INVALID_ORDER),  # no stop-limit price
        (("sell", "0.5", "99", "90"), RejectCode.POST_ONLY_WOULD_TAKE),  # the limit crosses the bid at 99.5
        (("sell", "0.5", "120", "101"), RejectCode.STOP_WOULD_TRIGGER),  # last price 100 is under 101
        (("sell", "5", "120", "90"), RejectCode.INSUFFICIENT_FUNDS),
    ],
)
def test_bad_lists_are_refused_and_change_nothing(args: tuple[str, ...], code: RejectCode) -> None:
    h = make_harness()
    h.fund(1, btc="1", usdt="100")
    print_at(h, "100")
    h.fund(5, usdt="1000")
    assert h.limit(5, "buy", "99.5", "0.1").reject is None
    before = fingerprint(h.core)
    assert oco(h, 1, *args).reject is code  # type: ignore[arg-type]
    assert fingerprint(h.core) == before


def test_an_oco_order_is_not_amended() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    print_at(h, "100")
    limit, _ = legs(oco(h, 1, "sell", "0.5", "110", "95"))
    assert h.apply(AmendOrder(1, limit, quantity=h.btc("0.2"))).reject is RejectCode.INVALID_ORDER
