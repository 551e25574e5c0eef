"""Market orders sized by base quantity or by quote amount, on a book and on an empty one."""

from __future__ import annotations

import pytest

from cambist.core.checks import check_invariants
from cambist.core.types import OrderStatus, RejectCode, TimeInForce

from .support import SYMBOL, Harness, fingerprint, make_harness


@pytest.fixture
def h() -> Harness:
    harness = make_harness()
    for account in (1, 2, 3):
        harness.fund(account, btc="10", usdt="1000000")
    harness.changes()
    return harness


def asks(h: Harness) -> None:
    h.limit(1, "sell", "50000", "0.1")
    h.limit(3, "sell", "50100", "0.1")


def bids(h: Harness) -> None:
    h.limit(1, "buy", "50000", "0.1")
    h.limit(3, "buy", "49900", "0.1")


def test_market_buy_by_quantity_walks_the_book_for_its_cost(h: Harness) -> None:
    asks(h)
    out = h.market(2, "buy", quantity="0.15")
    assert out.order is not None and out.order.status is OrderStatus.FILLED
    assert [(t.price, t.quantity) for t in out.trades] == [
        (h.usdt("50000"), h.btc("0.1")),
        (h.usdt("50100"), h.btc("0.05")),
    ]
    assert out.order.quote_filled == h.usdt("7505")
    assert h.balance(2, "USDT") == (h.usdt("992495"), 0)
    assert h.balance(2, "BTC") == (h.btc("10.1497"), 0)  # 0.15 less the 0.2 % taker fee
    check_invariants(h.core)


def test_market_buy_by_quantity_beyond_the_book_fills_what_there_is_and_expires(h: Harness) -> None:
    asks(h)
    out = h.market(2, "buy", quantity="0.3")
    assert out.order is not None and out.order.status is OrderStatus.EXPIRED
    assert out.order.filled_quantity == h.btc("0.2")
    assert h.balance(2, "USDT") == (h.usdt("989990"), 0)
    check_invariants(h.core)


def test_market_buy_by_quantity_without_the_funds_for_its_cost_is_rejected(h: Harness) -> None:
    asks(h)
    h.fund(4, usdt="7504.99")
    before = fingerprint(h.core)
    out = h.market(4, "buy", quantity="0.15")
    assert out.reject is RejectCode.INSUFFICIENT_FUNDS
    assert fingerprint(h.core) == before
    h.fund(4, usdt="0.01")
    assert h.market(4, "buy", quantity="0.15").order.status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert h.balance(4, "USDT") == (0, 0)


def test_market_buy_by_quote_quantity_is_filled_once_the_budget_cannot_buy_another_lot(h: Harness) -> None:
    asks(h)
    out = h.market(2, "buy", quote="6000")
    assert out.order is not None and out.order.status is OrderStatus.FILLED
    # 5000 buys the first level; 1000 at 50100 buys 0.0199 (one more lot would cost 5.01 more).
    assert [t.quantity for t in out.trades] == [h.btc("0.1"), h.btc("0.0199")]
    assert out.order.quote_filled == h.usdt("5996.99")
    assert h.balance(2, "USDT") == (h.usdt("1000000") - h.usdt("5996.99"), 0)
    check_invariants(h.core)


def test_market_buy_by_quote_quantity_beyond_the_book_expires(h: Harness) -> None:
    asks(h)
    out = h.market(2, "buy", quote="20000")
    assert out.order is not None and out.order.status is OrderStatus.EXPIRED
    assert out.order.filled_quantity == h.btc("0.2")
    assert h.balance(2, "USDT") == (h.usdt("989990"), 0)


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_market_order_by_quote_spending_its_budget_exactly_on_the_last_level_is_filled(
    h: Harness, side: str
) -> None:
    h.limit(1, "sell" if side == "buy" else "buy", "50000", "0.1")
    out = h.market(2, side, quote="5000")
    assert out.order is not None and out.order.quote_filled == h.usdt("5000")
    assert out.order.status is OrderStatus.FILLED


def test_market_sell_by_quantity(h: Harness) -> None:
    bids(h)
    out = h.market(2, "sell", quantity="0.15")
    assert out.order is not None and out.order.status is OrderStatus.FILLED
    assert [t.price for t in out.trades] == [h.usdt("50000"), h.usdt("49900")]
    assert out.order.quote_filled == h.usdt("7495")
    assert out.order.fee == h.usdt("14.99")  # 0.2 % of 7495 in USDT
    assert h.balance(2, "USDT") == (h.usdt("1007480.01"), 0)
    assert h.balance(2, "BTC") == (h.btc("9.85"), 0)
    check_invariants(h.core)


def test_market_sell_by_quote_quantity(h: Harness) -> None:
    bids(h)
    out = h.market(2, "sell", quote="6000")
    assert out.order is not None and out.order.status is OrderStatus.FILLED
    # 0.1 at 50000 gives 5000; 1000 more at 49900 takes 0.02 (998), one more lot would overshoot.
    assert [t.quantity for t in out.trades] == [h.btc("0.1"), h.btc("0.02")]
    assert out.order.quote_filled == h.usdt("5998")
    assert h.balance(2, "BTC") == (h.btc("9.88"), 0)
    assert h.balance(2, "USDT") == (h.usdt("1000000") + h.usdt("5998") - h.usdt("11.996"), 0)
    check_invariants(h.core)


def test_market_sell_without_the_base_is_rejected(h: Harness) -> None:
    bids(h)
    h.fund(4, btc="0.1499")
    before = fingerprint(h.core)
    assert h.market(4, "sell", quantity="0.15").reject is RejectCode.INSUFFICIENT_FUNDS
    assert fingerprint(h.core) == before


@pytest.mark.parametrize(
    ("side", "quantity", "quote", "tif"),
    [
        ("buy", "0.1", None, TimeInForce.GTC),
        ("sell", "0.1", None, TimeInForce.GTC),
        ("buy", None, "100", TimeInForce.GTC),
        ("sell", None, "100", TimeInForce.IOC),
        ("buy", "0.1", None, TimeInForce.FOK),
        ("sell", "0.1", None, TimeInForce.FOK),
    ],
)
def test_market_order_on_an_empty_book_expires_and_leaves_balances_alone(
    h: Harness, side: str, quantity: str | None, quote: str | None, tif: TimeInForce
) -> None:
    before = h.core.snapshot().balances
    out = h.market(2, side, quantity=quantity, quote=quote, tif=tif)
    assert out.reject is None
    assert out.order is not None and out.order.status is OrderStatus.EXPIRED
    assert out.trades == () and out.order.filled_quantity == 0
    assert h.core.snapshot().balances == before
    assert h.core.depth(SYMBOL, 10) == ([], [])
    check_invariants(h.core)


def test_market_fok_fills_completely_or_expires(h: Harness) -> None:
    asks(h)
    miss = h.market(2, "buy", quantity="0.25", tif=TimeInForce.FOK)
    assert miss.order is not None and miss.order.status is OrderStatus.EXPIRED and miss.trades == ()
    hit = h.market(2, "buy", quantity="0.2", tif=TimeInForce.FOK)
    assert hit.order is not None and hit.order.status is OrderStatus.FILLED and len(hit.trades) == 2
