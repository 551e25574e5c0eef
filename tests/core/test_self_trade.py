"""Self-trade prevention: an account never trades with itself, whatever the mode."""

from __future__ import annotations

import pytest

from cambist.core.checks import check_invariants
from cambist.core.types import OrderStatus, SelfTradePrevention, TimeInForce

from .support import SYMBOL, Harness, make_harness

STP = SelfTradePrevention


@pytest.fixture
def h() -> Harness:
    harness = make_harness()
    for account in (1, 2):
        harness.fund(account, btc="10", usdt="1000000")
    harness.changes()
    return harness


def test_expire_maker_is_the_default_and_cancels_the_resting_order(h: Harness) -> None:
    own = h.limit(1, "sell", "50000", "0.1")
    other = h.limit(2, "sell", "50000", "0.1")
    out = h.limit(1, "buy", "50000", "0.1")
    assert own.order and other.order and out.order
    assert out.order.self_trade_prevention is STP.EXPIRE_MAKER
    (expired,) = (o for o in out.orders if o.order_id == own.order.order_id)
    assert expired.status is OrderStatus.EXPIRED and expired.hold_remaining == 0
    (trade,) = out.trades
    assert trade.maker_order_id == other.order.order_id
    assert out.order.status is OrderStatus.FILLED
    assert h.balance(1, "BTC")[1] == 0  # the expired maker's hold is released
    check_invariants(h.core)


def test_expire_maker_then_rests_when_only_own_orders_crossed(h: Harness) -> None:
    h.limit(1, "sell", "50000", "0.1")
    out = h.limit(1, "buy", "50000", "0.1", stp=STP.EXPIRE_MAKER)
    assert out.order is not None and out.order.status is OrderStatus.NEW and out.trades == ()
    assert h.core.depth(SYMBOL, 10) == ([(h.usdt("50000"), h.btc("0.1"))], [])
    check_invariants(h.core)


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_expire_taker_stops_the_incoming_order_and_keeps_the_maker(h: Harness, tif: TimeInForce) -> None:
    h.limit(2, "sell", "49900", "0.1")
    own = h.limit(1, "sell", "50000", "0.1")
    out = h.limit(1, "buy", "50000", "0.3", tif=tif, stp=STP.EXPIRE_TAKER)
    assert out.order is not None and out.order.status is OrderStatus.EXPIRED
    assert all(t.maker_account_id != t.taker_account_id for t in out.trades)
    assert own.order is not None and own.order.order_id in h.core.orders
    if tif is TimeInForce.IOC:  # fills 0.1 from account 2, then stops at its own order
        assert [t.price for t in out.trades] == [h.usdt("49900")]
        assert h.core.depth(SYMBOL, 10)[1] == [(h.usdt("50000"), h.btc("0.1"))]
    else:  # cannot fill 0.3 without its own order: killed before any trade
        assert out.trades == ()
        assert len(h.core.depth(SYMBOL, 10)[1]) == 2
    assert h.balance(1, "USDT")[1] == 0
    check_invariants(h.core)


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_expire_both_cancels_maker_and_taker(h: Harness, tif: TimeInForce) -> None:
    own = h.limit(1, "sell", "50000", "0.1")
    out = h.limit(1, "buy", "50000", "0.1", tif=tif, stp=STP.EXPIRE_BOTH)
    assert out.order is not None and out.order.status is OrderStatus.EXPIRED and out.trades == ()
    assert own.order is not None
    if tif is TimeInForce.IOC:
        assert own.order.order_id not in h.core.orders
    assert h.balance(1, "USDT")[1] == 0
    check_invariants(h.core)


def test_expire_taker_gtc_limit_expires_instead_of_crossing_the_book(h: Harness) -> None:
    h.limit(1, "sell", "50000", "0.1")
    try:
        out = h.limit(1, "buy", "50000", "0.1", stp=STP.EXPIRE_TAKER)
    except RuntimeError as error:
        raise AssertionError(f"core raised {error!r}") from error
    assert out.order is not None and out.order.status is OrderStatus.EXPIRED
    check_invariants(h.core)


def test_expire_both_gtc_limit_expires_the_taker_too(h: Harness) -> None:
    h.limit(1, "sell", "50000", "0.1")
    out = h.limit(1, "buy", "50000", "0.1", stp=STP.EXPIRE_BOTH)
    assert out.order is not None and out.order.status is OrderStatus.EXPIRED
    assert h.core.depth(SYMBOL, 10) == ([], [])


@pytest.mark.parametrize("mode", list(STP))
def test_market_orders_never_trade_with_their_own_account(h: Harness, mode: SelfTradePrevention) -> None:
    h.limit(1, "sell", "50000", "0.1")
    h.limit(2, "sell", "50100", "0.1")
    out = h.market(1, "buy", quantity="0.2", stp=mode)
    assert out.order is not None
    assert all(t.maker_account_id != t.taker_account_id for t in out.trades)
    assert len(out.trades) == (1 if mode is STP.EXPIRE_MAKER else 0)
    check_invariants(h.core)


def test_the_markets_default_mode_applies_when_the_order_names_none(h: Harness) -> None:
    h.upsert(self_trade_prevention=STP.EXPIRE_TAKER)
    own = h.limit(1, "sell", "50000", "0.1")
    out = h.market(1, "buy", quantity="0.1")
    assert out.order is not None and out.order.self_trade_prevention is STP.EXPIRE_TAKER
    assert out.order.status is OrderStatus.EXPIRED
    assert own.order is not None and own.order.order_id in h.core.orders


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_expire_both_market_order_meeting_only_its_own_order_expires_that_order(
    h: Harness, side: str
) -> None:
    h.limit(1, "sell" if side == "buy" else "buy", "50000", "0.1")
    out = h.market(1, side, quantity="0.1", stp=STP.EXPIRE_BOTH)
    assert out.order is not None and out.order.status is OrderStatus.EXPIRED
    assert h.core.orders == {}
