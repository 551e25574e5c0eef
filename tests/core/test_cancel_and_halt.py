"""Cancel, cancel-all, halted markets and client order ids."""

from __future__ import annotations

import pytest

from cambist.core.checks import check_invariants
from cambist.core.commands import AddAsset, Credit, PlaceOrder, UpsertMarket
from cambist.core.types import MarketStatus, OrderStatus, OrderType, RejectCode, Side

from .support import SYMBOL, Harness, fingerprint, make_harness


@pytest.fixture
def h() -> Harness:
    harness = make_harness()
    for account in (1, 2):
        harness.fund(account, btc="10", usdt="1000000")
    harness.changes()
    return harness


def test_cancel_own_order_releases_its_hold(h: Harness) -> None:
    placed = h.limit(1, "buy", "50000", "0.1")
    assert placed.order is not None
    assert h.balance(1, "USDT") == (h.usdt("995000"), h.usdt("5000"))
    out = h.cancel(1, placed.order.order_id)
    assert out.order is not None and out.order.status is OrderStatus.CANCELED
    assert out.order.hold_remaining == 0
    assert h.balance(1, "USDT") == (h.usdt("1000000"), 0)
    assert h.core.depth(SYMBOL, 10) == ([], [])
    assert [(b.account_id, b.available, b.locked) for b in out.balances] == [(1, h.usdt("1000000"), 0)]
    check_invariants(h.core)


def test_cancel_a_partially_filled_order_releases_only_what_is_left(h: Harness) -> None:
    placed = h.limit(1, "sell", "50000", "1")
    h.limit(2, "buy", "50000", "0.4")
    assert placed.order is not None
    out = h.cancel(1, placed.order.order_id)
    assert out.order is not None and out.order.status is OrderStatus.CANCELED
    assert out.order.filled_quantity == h.btc("0.4")
    assert h.balance(1, "BTC") == (h.btc("9.6"), 0)


def test_cancel_another_accounts_order_looks_like_a_missing_one_and_changes_nothing(h: Harness) -> None:
    placed = h.limit(1, "buy", "50000", "0.1")
    assert placed.order is not None
    h.changes()
    before = fingerprint(h.core)
    theirs = h.cancel(2, placed.order.order_id)
    missing = h.cancel(2, 999_999)
    assert theirs.reject is RejectCode.ORDER_NOT_FOUND and missing.reject is RejectCode.ORDER_NOT_FOUND
    assert theirs.message.replace(str(placed.order.order_id), "N") == missing.message.replace("999999", "N")
    assert fingerprint(h.core) == before
    changes = h.changes()
    assert changes.orders == [] and changes.ledger == [] and changes.balances == []


def test_a_final_order_can_no_longer_be_canceled(h: Harness) -> None:
    placed = h.limit(1, "sell", "50000", "0.1")
    h.limit(2, "buy", "50000", "0.1")
    assert placed.order is not None
    assert h.cancel(1, placed.order.order_id).reject is RejectCode.ORDER_NOT_FOUND
    other = h.limit(1, "sell", "50000", "0.1")
    assert other.order is not None
    assert h.cancel(1, other.order.order_id).reject is None
    assert h.cancel(1, other.order.order_id).reject is RejectCode.ORDER_NOT_FOUND


def test_cancel_all_cancels_every_open_order_of_the_account_on_that_market_only(h: Harness) -> None:
    h.ok(AddAsset("ETH", 8))
    h.ok(UpsertMarket("ETH-USDT", "ETH", "USDT", 10**6, 10**4, 10**4, 0, 1000, 2000))
    h.ok(Credit("eth", 1, "ETH", 10**9, "test"))
    mine = [
        h.limit(1, "buy", "49000", "0.1"),
        h.limit(1, "sell", "51000", "0.2"),
        h.limit(1, "buy", "48000", "1"),
    ]
    theirs = h.limit(2, "buy", "49000", "0.1")
    eth = h.limit(1, "sell", "3000", "1", symbol="ETH-USDT")
    out = h.cancel_all(1)
    assert out.reject is None
    assert [o.order_id for o in out.orders] == [o.order.order_id for o in mine if o.order]
    assert all(o.status is OrderStatus.CANCELED for o in out.orders)
    assert h.balance(1, "USDT") == (h.usdt("1000000"), 0) and h.balance(1, "BTC") == (h.btc("10"), 0)
    assert theirs.order and theirs.order.order_id in h.core.orders
    assert eth.order and eth.order.order_id in h.core.orders
    assert h.cancel_all(1).orders == ()  # nothing left: a no-op, not an error
    assert h.cancel_all(1, "NOPE-USDT").reject is RejectCode.UNKNOWN_SYMBOL
    check_invariants(h.core)


def test_a_halted_market_refuses_new_orders_but_allows_cancels(h: Harness) -> None:
    first = h.limit(1, "buy", "49000", "0.1")
    second = h.limit(1, "buy", "48000", "0.1")
    assert first.order and second.order
    assert h.upsert(status=MarketStatus.HALTED).reject is None
    before = fingerprint(h.core)
    assert h.limit(2, "sell", "49000", "0.1").reject is RejectCode.MARKET_HALTED
    assert h.market(2, "sell", quantity="0.1").reject is RejectCode.MARKET_HALTED
    assert fingerprint(h.core) == before
    assert h.cancel(1, first.order.order_id).reject is None
    assert h.cancel_all(1).reject is None
    assert h.balance(1, "USDT") == (h.usdt("1000000"), 0)
    assert h.upsert(status=MarketStatus.TRADING).reject is None
    assert h.limit(2, "sell", "49000", "0.1").reject is None
    check_invariants(h.core)


def test_duplicate_open_client_order_id_is_rejected_until_the_order_is_final(h: Harness) -> None:
    first = h.limit(1, "buy", "49000", "0.1", client_order_id="my-order.1")
    assert first.order is not None and first.order.client_order_id == "my-order.1"
    before = fingerprint(h.core)
    dup = h.limit(1, "buy", "48000", "0.1", client_order_id="my-order.1")
    assert dup.reject is RejectCode.DUPLICATE_CLIENT_ORDER_ID
    assert fingerprint(h.core) == before
    assert h.limit(2, "buy", "48000", "0.1", client_order_id="my-order.1").reject is None  # another account
    h.cancel(1, first.order.order_id)
    assert h.limit(1, "buy", "48000", "0.1", client_order_id="my-order.1").reject is None


@pytest.mark.parametrize("client_order_id", ["", "has space", "x" * 65, "ünï", "a/b"])
def test_malformed_client_order_id_is_rejected(h: Harness, client_order_id: str) -> None:
    out = h.apply(
        PlaceOrder(
            1,
            SYMBOL,
            Side.BUY,
            OrderType.LIMIT,
            quantity=10**7,
            price=10**12,
            client_order_id=client_order_id,
        )
    )
    assert out.reject is RejectCode.INVALID_ORDER
