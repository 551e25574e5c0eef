"""Fees: charged on what each side receives, rounded up, never above it, to the fee account."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cambist.core.checks import check_invariants
from cambist.core.commands import PlaceOrder
from cambist.core.types import FEE_ACCOUNT, OrderType, Side

from .support import Harness, make_harness


def funded(**market: object) -> Harness:
    h = make_harness(8, **market)
    for account in (1, 2):
        h.fund(account, btc="100", usdt="10000000")
    return h


def test_fees_round_up_in_the_exchanges_favour() -> None:
    h = funded(maker_fee_ppm=1234, taker_fee_ppm=3333)
    h.limit(1, "sell", "50000.01", "0.0001")
    (trade,) = h.limit(2, "buy", "50000.01", "0.0001").trades
    assert trade.quote_quantity == h.usdt("5.000001")
    assert trade.taker_fee == 34  # 10_000 BTC units x 0.3333 % = 33.33 -> 34
    assert trade.maker_fee == 617_001  # 500_000_100 USDT units x 0.1234 % = 617_000.1234 -> 617_001
    assert h.fees("BTC") == 34 and h.fees("USDT") == 617_001


def test_maker_and_taker_rates_follow_the_role_not_the_side() -> None:
    h = funded()
    h.limit(2, "buy", "50000", "1")
    (trade,) = h.limit(1, "sell", "50000", "1").trades  # the seller takes this time
    assert trade.taker_fee == h.usdt("100")  # 0.2 % of 50000 USDT, paid by the selling taker
    assert trade.maker_fee == h.btc("0.001")  # 0.1 % of 1 BTC, paid by the buying maker
    assert trade.taker_fee_asset == "USDT" and trade.maker_fee_asset == "BTC"
    assert h.balance(2, "BTC") == (h.btc("100.999"), 0)
    assert h.balance(1, "USDT") == (h.usdt("10049900"), 0)


def test_zero_fee_market_charges_nothing_and_posts_no_fee_entries() -> None:
    h = funded(maker_fee_ppm=0, taker_fee_ppm=0)
    h.changes()
    h.limit(1, "sell", "50000", "0.5")
    h.limit(2, "buy", "50000", "0.5")
    assert h.fees("BTC") == 0 and h.fees("USDT") == 0
    assert all(entry.kind != "fee" for entry in h.changes().ledger)


def test_changing_fees_at_runtime_applies_to_the_next_trade() -> None:
    h = funded()
    h.limit(1, "sell", "50000", "1")
    first = h.limit(2, "buy", "50000", "0.5").trades[0]
    assert (first.maker_fee, first.taker_fee) == (h.usdt("25"), h.btc("0.001"))
    assert h.upsert(maker_fee_ppm=0, taker_fee_ppm=5000).reject is None
    second = h.limit(2, "buy", "50000", "0.5").trades[0]  # the same resting maker
    assert (second.maker_fee, second.taker_fee) == (0, h.btc("0.0025"))
    assert h.core.balance(FEE_ACCOUNT, "BTC").available == h.btc("0.0035")
    check_invariants(h.core)


@settings(max_examples=60, deadline=None)
@given(
    lots=st.integers(min_value=1, max_value=10**6),
    ticks=st.integers(min_value=1, max_value=10**8),
    maker_ppm=st.integers(min_value=0, max_value=100_000),
    taker_ppm=st.integers(min_value=0, max_value=100_000),
    buyer_takes=st.booleans(),
)
def test_fees_never_exceed_what_each_side_receives(
    lots: int, ticks: int, maker_ppm: int, taker_ppm: int, buyer_takes: bool
) -> None:
    h = make_harness(maker_fee_ppm=maker_ppm, taker_fee_ppm=taker_ppm)
    market = h.core.markets["BTC-USDT"].view
    quantity, price = lots * market.lot_size, ticks * market.tick_size
    quote = quantity * price // 10**8
    h.fund(1, btc="10000")
    h.fund(2, usdt=str(quote // 10**8 + 1))
    maker_side, maker = ("sell", 1) if buyer_takes else ("buy", 2)
    taker_side, taker = ("buy", 2) if buyer_takes else ("sell", 1)
    h.ok(PlaceOrder(maker, "BTC-USDT", Side(maker_side), OrderType.LIMIT, quantity=quantity, price=price))
    (trade,) = h.ok(
        PlaceOrder(taker, "BTC-USDT", Side(taker_side), OrderType.LIMIT, quantity=quantity, price=price)
    ).trades
    buyer_fee, seller_fee = (
        (trade.taker_fee, trade.maker_fee) if buyer_takes else (trade.maker_fee, trade.taker_fee)
    )
    buyer_ppm, seller_ppm = (taker_ppm, maker_ppm) if buyer_takes else (maker_ppm, taker_ppm)
    assert trade.quote_quantity == quote
    assert 0 <= buyer_fee <= quantity and 0 <= seller_fee <= quote
    assert buyer_fee * 10**6 >= quantity * buyer_ppm > (buyer_fee - 1) * 10**6
    assert seller_fee * 10**6 >= quote * seller_ppm > (seller_fee - 1) * 10**6
    assert h.fees("BTC") == buyer_fee and h.fees("USDT") == seller_fee
    assert h.balance(2, "BTC") == (quantity - buyer_fee, 0)
    check_invariants(h.core)
