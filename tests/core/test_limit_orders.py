"""Limit orders: resting, crossing, partial fills, price-time priority, IOC, FOK, post-only."""

from __future__ import annotations

import pytest

from cambist.core.checks import check_invariants
from cambist.core.types import OrderStatus, RejectCode, Side, TimeInForce

from .support import SYMBOL, Harness, fingerprint, make_harness


@pytest.fixture
def h() -> Harness:
    harness = make_harness()
    for account in (1, 2, 3):
        harness.fund(account, btc="10", usdt="1000000")
    harness.changes()
    return harness


def test_a_limit_order_that_does_not_cross_rests_and_holds_funds(h: Harness) -> None:
    sell = h.limit(1, "sell", "50000", "0.5")
    buy = h.limit(2, "buy", "49000", "0.2")
    assert sell.order is not None and sell.order.status is OrderStatus.NEW
    assert buy.order is not None and buy.order.status is OrderStatus.NEW
    assert sell.trades == () and buy.trades == ()
    assert h.core.depth(SYMBOL, 10) == ([(h.usdt("49000"), h.btc("0.2"))], [(h.usdt("50000"), h.btc("0.5"))])
    assert h.balance(1, "BTC") == (h.btc("9.5"), h.btc("0.5"))
    assert h.balance(2, "USDT") == (h.usdt("990200"), h.usdt("9800"))
    check_invariants(h.core)


def test_a_crossing_limit_order_trades_and_settles_with_fees(h: Harness) -> None:
    h.limit(1, "sell", "50000", "0.5")
    out = h.limit(2, "buy", "50000", "0.5")
    assert out.order is not None and out.order.status is OrderStatus.FILLED
    (trade,) = out.trades
    assert (trade.price, trade.quantity, trade.quote_quantity) == (
        h.usdt("50000"),
        h.btc("0.5"),
        h.usdt("25000"),
    )
    assert trade.taker_side is Side.BUY
    assert (trade.buyer_account_id, trade.seller_account_id) == (2, 1)
    # Buyer (taker, 0.2 %) pays in BTC, seller (maker, 0.1 %) in USDT.
    assert (trade.taker_fee, trade.maker_fee) == (h.btc("0.001"), h.usdt("25"))
    assert h.balance(2, "BTC") == (h.btc("10.499"), 0)
    assert h.balance(2, "USDT") == (h.usdt("975000"), 0)
    assert h.balance(1, "BTC") == (h.btc("9.5"), 0)
    assert h.balance(1, "USDT") == (h.usdt("1024975"), 0)
    assert h.fees("BTC") == h.btc("0.001") and h.fees("USDT") == h.usdt("25")
    assert [o.status for o in out.orders] == [OrderStatus.FILLED]  # the maker
    assert h.core.depth(SYMBOL, 10) == ([], [])
    check_invariants(h.core)


def test_partial_fills_leave_the_maker_resting_with_its_remainder(h: Harness) -> None:
    maker = h.limit(1, "sell", "50000", "1")
    first = h.limit(2, "buy", "50000", "0.3")
    second = h.limit(3, "buy", "50000", "0.2")
    assert maker.order is not None and first.order is not None and second.order is not None
    (view,) = second.orders
    assert view.order_id == maker.order.order_id
    assert view.status is OrderStatus.PARTIALLY_FILLED
    assert view.filled_quantity == h.btc("0.5") and view.quantity == h.btc("1")
    assert view.hold_remaining == h.btc("0.5")
    assert h.core.depth(SYMBOL, 10)[1] == [(h.usdt("50000"), h.btc("0.5"))]
    assert h.balance(1, "BTC") == (h.btc("9"), h.btc("0.5"))
    # A partially filled taker rests with what is left.
    taker = h.limit(2, "buy", "50000", "0.8")
    assert taker.order is not None and taker.order.status is OrderStatus.PARTIALLY_FILLED
    assert taker.order.filled_quantity == h.btc("0.5")
    assert h.core.depth(SYMBOL, 10) == ([(h.usdt("50000"), h.btc("0.3"))], [])
    check_invariants(h.core)


def test_price_time_priority_better_price_first_then_earlier_order(h: Harness) -> None:
    worse = h.limit(1, "sell", "50100", "0.5")
    early = h.limit(1, "sell", "50000", "0.5")
    late = h.limit(3, "sell", "50000", "0.5")
    out = h.limit(2, "buy", "50100", "1.2")
    assert worse.order and early.order and late.order
    assert [(t.maker_order_id, t.quantity, t.price) for t in out.trades] == [
        (early.order.order_id, h.btc("0.5"), h.usdt("50000")),
        (late.order.order_id, h.btc("0.5"), h.usdt("50000")),
        (worse.order.order_id, h.btc("0.2"), h.usdt("50100")),
    ]
    check_invariants(h.core)


def test_same_price_queue_fills_the_earlier_maker_first_on_the_bid_side(h: Harness) -> None:
    early = h.limit(3, "buy", "50000", "0.4")
    late = h.limit(1, "buy", "50000", "0.4")
    out = h.limit(2, "sell", "50000", "0.5")
    assert early.order and late.order
    assert [(t.maker_order_id, t.quantity) for t in out.trades] == [
        (early.order.order_id, h.btc("0.4")),
        (late.order.order_id, h.btc("0.1")),
    ]


def test_fills_execute_at_the_makers_price_within_the_takers_limit(h: Harness) -> None:
    h.limit(1, "sell", "50000", "0.1")
    h.limit(1, "sell", "50500", "0.1")
    h.limit(1, "sell", "51000", "0.1")
    out = h.limit(2, "buy", "50500", "1")
    assert [t.price for t in out.trades] == [h.usdt("50000"), h.usdt("50500")]
    h.limit(3, "buy", "49000", "0.1")
    h.limit(3, "buy", "48000", "0.1")
    sell = h.limit(1, "sell", "48500", "1")  # 0.8 left of account 2's bid at 50500, then 49000
    assert [(t.price, t.quantity) for t in sell.trades] == [
        (h.usdt("50500"), h.btc("0.8")),
        (h.usdt("49000"), h.btc("0.1")),
    ]
    bids, asks = h.core.depth(SYMBOL, 10)
    assert bids == [(h.usdt("48000"), h.btc("0.1"))]
    assert asks == [(h.usdt("48500"), h.btc("0.1")), (h.usdt("51000"), h.btc("0.1"))]
    check_invariants(h.core)


def test_price_improvement_releases_the_excess_hold_of_a_filled_buy(h: Harness) -> None:
    h.limit(1, "sell", "50000", "0.2")
    out = h.limit(2, "buy", "51000", "0.2")  # holds 10200, pays 10000
    assert out.order is not None and out.order.status is OrderStatus.FILLED
    assert out.order.hold_remaining == 0
    assert h.balance(2, "USDT") == (h.usdt("990000"), 0)
    check_invariants(h.core)


def test_price_improvement_releases_the_excess_hold_of_a_resting_buy(h: Harness) -> None:
    h.limit(1, "sell", "50000", "0.1")
    out = h.limit(2, "buy", "51000", "0.2")  # fills 0.1 at 50000, rests 0.1 at 51000
    assert out.order is not None and out.order.status is OrderStatus.PARTIALLY_FILLED
    assert h.balance(2, "USDT") == (h.usdt("1000000") - h.usdt("5000") - h.usdt("5100"), h.usdt("5100"))


def test_ioc_remainder_expires_and_its_hold_is_released(h: Harness) -> None:
    h.limit(1, "sell", "50000", "0.1")
    out = h.limit(2, "buy", "50000", "0.3", tif=TimeInForce.IOC)
    assert out.order is not None and out.order.status is OrderStatus.EXPIRED
    assert out.order.filled_quantity == h.btc("0.1")
    assert h.core.depth(SYMBOL, 10) == ([], [])
    assert h.balance(2, "USDT") == (h.usdt("995000"), 0)
    empty = h.limit(2, "sell", "50000", "0.3", tif=TimeInForce.IOC)
    assert empty.order is not None and empty.order.status is OrderStatus.EXPIRED
    assert h.balance(2, "BTC") == (h.btc("10.0998"), 0)
    check_invariants(h.core)


def test_fok_fills_completely_across_levels(h: Harness) -> None:
    h.limit(1, "sell", "50000", "0.1")
    h.limit(3, "sell", "50100", "0.1")
    out = h.limit(2, "buy", "50100", "0.2", tif=TimeInForce.FOK)
    assert out.order is not None and out.order.status is OrderStatus.FILLED
    assert sum(t.quantity for t in out.trades) == h.btc("0.2")
    check_invariants(h.core)


@pytest.mark.parametrize(("price", "quantity"), [("50100", "0.3"), ("50000", "0.2")])
def test_fok_that_cannot_fill_completely_expires_without_any_other_change(
    h: Harness, price: str, quantity: str
) -> None:
    h.limit(1, "sell", "50000", "0.1")
    h.limit(3, "sell", "50100", "0.1")
    h.changes()
    before = h.core.snapshot()
    out = h.limit(2, "buy", price, quantity, tif=TimeInForce.FOK)
    assert out.reject is None
    assert out.order is not None and out.order.status is OrderStatus.EXPIRED
    assert out.order.filled_quantity == 0 and out.trades == () and out.orders == ()
    after = h.core.snapshot()
    assert after.next_order_id == before.next_order_id + 1
    assert (after.balances, after.open_orders, after.next_trade_id, after.next_posting_id) == (
        before.balances,
        before.open_orders,
        before.next_trade_id,
        before.next_posting_id,
    )
    changes = h.changes()
    assert [o.order_id for o in changes.orders] == [out.order.order_id]
    assert changes.trades == [] and changes.ledger == [] and changes.balances == []


def test_post_only_is_rejected_when_it_would_cross_and_rests_otherwise(h: Harness) -> None:
    h.limit(1, "sell", "50000", "0.1")
    h.limit(3, "buy", "49000", "0.1")
    before = fingerprint(h.core)
    assert h.limit(2, "buy", "50000", "0.1", post_only=True).reject is RejectCode.POST_ONLY_WOULD_TAKE
    assert h.limit(2, "sell", "49000", "0.1", post_only=True).reject is RejectCode.POST_ONLY_WOULD_TAKE
    assert fingerprint(h.core) == before
    out = h.limit(2, "buy", "49999.99", "0.1", post_only=True)
    assert out.order is not None and out.order.status is OrderStatus.NEW and out.order.post_only
    check_invariants(h.core)


def test_quote_scale_six_settles_exact_quote_amounts() -> None:
    h = make_harness(quote_scale=6)
    h.fund(1, btc="1")
    h.fund(2, usdt="100000")
    h.limit(1, "sell", "43210.57", "0.1234")
    out = h.limit(2, "buy", "43210.57", "0.1234")
    (trade,) = out.trades
    assert trade.quote_quantity == h.usdt("5332.184338")  # 0.1234 x 43210.57 exactly
    assert trade.maker_fee == h.usdt("5.332185")  # 0.1 % rounded up from 5.3321843...
    assert trade.taker_fee == h.btc("0.00024680")
    assert h.balance(1, "USDT") == (h.usdt("5326.852153"), 0)
    check_invariants(h.core)
