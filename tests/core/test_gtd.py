"""Time in force GTD: rests like GTC until its expireTime, then ``ExpireOrders`` (the engine's
clock command, journaled like any other) expires it and frees its hold. Never a wall clock."""

from __future__ import annotations

import pytest

from cambist.core.checks import check_invariants
from cambist.core.commands import ExpireOrders, PlaceOrder
from cambist.core.exchange import ExchangeCore
from cambist.core.types import OrderStatus, OrderType, RejectCode, Side, TimeInForce

from .support import SYMBOL, Harness, fingerprint, make_harness

GTD = TimeInForce.GTD


def gtd(
    h: Harness, account: int, side: str, limit: str, quantity: str, expire: int, **kw: object
) -> PlaceOrder:
    fields: dict[str, object] = {
        "account_id": account,
        "symbol": SYMBOL,
        "side": Side(side),
        "order_type": OrderType.LIMIT,
        "quantity": h.btc(quantity),
        "price": h.usdt(limit),
        "time_in_force": GTD,
        "expire_time": expire,
    }
    fields.update(kw)
    return PlaceOrder(**fields)  # type: ignore[arg-type]


def test_a_gtd_order_rests_then_expires_when_the_clock_passes_its_time() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    placed = h.ok(gtd(h, 1, "sell", "100", "0.5", expire=(h.seq + 5) * 1000))
    assert placed.order is not None and placed.order.time_in_force is GTD
    order_id = placed.order.order_id
    assert h.core.next_expiry() == placed.order.expire_time
    assert h.ok(ExpireOrders()).orders == ()  # not yet (time = seq * 1000)
    assert order_id in h.core.orders
    while h.seq * 1000 < placed.order.expire_time - 1000:
        h.ok(ExpireOrders())
    expired = h.ok(ExpireOrders())  # this command's time reaches the expiry
    assert [o.order_id for o in expired.orders] == [order_id]
    assert expired.orders[0].status is OrderStatus.EXPIRED
    assert order_id not in h.core.orders and h.core.next_expiry() is None
    assert h.balance(1, "BTC") == (h.btc("1"), 0)
    assert h.core.depth(SYMBOL, 10) == ([], [])
    check_invariants(h.core)
    assert h.replay().compute_state_hash() == h.core.compute_state_hash()


def test_a_gtd_order_that_fills_or_is_canceled_is_not_expired_later() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    h.fund(2, usdt="1000")
    filled = h.ok(gtd(h, 1, "sell", "100", "0.1", expire=100_000)).order
    canceled = h.ok(gtd(h, 1, "sell", "110", "0.1", expire=100_000)).order
    assert filled is not None and canceled is not None
    assert h.limit(2, "buy", "100", "0.1").trades
    assert h.cancel(1, canceled.order_id).reject is None
    assert h.core.next_expiry() is None
    h.seq = 200  # the clock moves on
    assert h.ok(ExpireOrders()).orders == ()
    check_invariants(h.core)


def test_expiries_survive_a_restart_and_go_in_time_order() -> None:
    h = make_harness()
    h.fund(1, btc="1", usdt="1000")
    late = h.ok(gtd(h, 1, "sell", "120", "0.1", expire=60_000)).order
    early = h.ok(gtd(h, 1, "buy", "80", "0.1", expire=50_000)).order
    stop = h.ok(
        gtd(
            h, 1, "sell", "70", "0.1", expire=55_000, order_type=OrderType.STOP_LIMIT, stop_price=h.usdt("75")
        )
    ).order
    assert late is not None and early is not None and stop is not None
    restored = ExchangeCore.restore(h.core.snapshot())
    assert restored.next_expiry() == 50_000
    assert restored.compute_state_hash() == h.core.state_hash()
    h.core = restored
    h.seq = 58  # time 59,000 at the next command
    expired = h.ok(ExpireOrders())
    assert [o.order_id for o in expired.orders] == [early.order_id, stop.order_id]  # by expiry
    assert set(h.core.orders) == {late.order_id}
    check_invariants(h.core)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"expire_time": None}, RejectCode.INVALID_ORDER),  # GTD needs one
        ({"expire_time": 1}, RejectCode.INVALID_ORDER),  # in the past
        ({"time_in_force": TimeInForce.GTC}, RejectCode.INVALID_ORDER),  # an expiry without GTD
        ({"order_type": OrderType.MARKET, "price": None}, RejectCode.INVALID_ORDER),  # no limit price
    ],
)
def test_bad_gtd_orders_are_refused_and_change_nothing(fields: dict[str, object], code: RejectCode) -> None:
    h = make_harness()
    h.fund(1, btc="1")
    before = fingerprint(h.core)
    outcome = h.apply(gtd(h, 1, "sell", "100", "0.1", expire=10**9, **fields))
    assert outcome.reject is code, outcome
    assert fingerprint(h.core) == before


def test_a_post_only_gtd_order_rests() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    placed = h.ok(gtd(h, 1, "sell", "100", "0.1", expire=10**9, post_only=True)).order
    assert placed is not None and placed.status is OrderStatus.NEW
