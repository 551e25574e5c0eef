"""Every reject path: the right stable code, and the command changes nothing.

"Nothing" is checked three ways: the snapshot (balances, open orders in queue order, assets,
markets, id counters) is byte-identical apart from the core's clock, ``take_changes`` has no
order, trade, ledger entry or balance, and the incremental hash still equals a full recompute.
The clock (``last_seq``/``last_time``) does advance on a reject — the journal sequences the
rejected command too — and ``state_hash()`` covers it, so the hash itself is not compared.
"""

from __future__ import annotations

import msgspec
import pytest

from cambist.core.checks import check_invariants
from cambist.core.commands import (
    AddAsset,
    CancelAllOrders,
    CancelOrder,
    Command,
    Credit,
    PlaceOrder,
    UpsertMarket,
)
from cambist.core.exchange import MAX_OPEN_ORDERS_PER_ACCOUNT
from cambist.core.numbers import MAX_UNITS
from cambist.core.types import (
    EXTERNAL_ACCOUNT,
    FEE_ACCOUNT,
    INSURANCE_ACCOUNT,
    OrderType,
    RejectCode,
    Side,
    TimeInForce,
)

from .support import SYMBOL, Harness, fingerprint, make_harness, market_command

R = RejectCode
BUY, SELL, LIMIT, MARKET = Side.BUY, Side.SELL, OrderType.LIMIT, OrderType.MARKET
P = 50_000 * 10**8  # 50000 USDT
Q = 10**7  # 0.1 BTC


class Bogus(Command, frozen=True, tag="bogus"):
    """A command type the core does not know."""


def limit(side: Side = BUY, quantity: int | None = Q, price: int | None = P, **kw: object) -> PlaceOrder:
    return PlaceOrder(1, SYMBOL, side, LIMIT, quantity=quantity, price=price, **kw)  # type: ignore[arg-type]


def market(side: Side = BUY, **kw: object) -> PlaceOrder:
    return PlaceOrder(1, SYMBOL, side, MARKET, **kw)  # type: ignore[arg-type]


def stop(order_type: OrderType = OrderType.STOP_LIMIT, side: Side = SELL, **kw: object) -> PlaceOrder:
    """A conditional order of account 1 (1 BTC, 5500 USDT available); no trade has printed yet."""
    fields: dict[str, object] = {"quantity": Q, "price": 40_000 * 10**8, "stop_price": 41_000 * 10**8}
    fields.update(kw)
    return PlaceOrder(1, SYMBOL, side, order_type, **fields)  # type: ignore[arg-type]


STOP_MARKET, TP_MARKET = OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET


def upsert(**kw: object) -> UpsertMarket:
    return market_command(8, **kw)


CASES: list[tuple[str, Command, RejectCode]] = [
    # --------------------------------------------------------------- place: routing and account
    ("unknown symbol", PlaceOrder(1, "ETH-USDT", BUY, LIMIT, quantity=Q, price=P), R.UNKNOWN_SYMBOL),
    ("fee account orders", PlaceOrder(FEE_ACCOUNT, SYMBOL, BUY, LIMIT, Q, P), R.ACCOUNT_NOT_ALLOWED),
    (
        "external account orders",
        PlaceOrder(EXTERNAL_ACCOUNT, SYMBOL, BUY, LIMIT, Q, P),
        R.ACCOUNT_NOT_ALLOWED,
    ),
    ("account zero orders", PlaceOrder(0, SYMBOL, BUY, LIMIT, Q, P), R.ACCOUNT_NOT_ALLOWED),
    ("malformed client id", limit(client_order_id="no spaces"), R.INVALID_ORDER),
    ("duplicate client id", limit(client_order_id="resting"), R.DUPLICATE_CLIENT_ORDER_ID),
    # --------------------------------------------------------------- limit orders
    ("limit without price", limit(price=None), R.INVALID_PRICE),
    ("limit without quantity", limit(quantity=None), R.INVALID_QUANTITY),
    ("limit with quote quantity", limit(quote_quantity=P), R.INVALID_ORDER),
    ("post-only IOC", limit(post_only=True, time_in_force=TimeInForce.IOC), R.INVALID_ORDER),
    ("post-only FOK", limit(post_only=True, time_in_force=TimeInForce.FOK), R.INVALID_ORDER),
    ("zero price", limit(price=0), R.INVALID_PRICE),
    ("negative price", limit(price=-P), R.INVALID_PRICE),
    ("price off tick", limit(price=P + 1), R.INVALID_PRICE),
    ("price too large", limit(price=MAX_UNITS), R.INVALID_PRICE),
    ("zero quantity", limit(quantity=0), R.INVALID_QUANTITY),
    ("negative quantity", limit(quantity=-Q), R.INVALID_QUANTITY),
    ("quantity off lot", limit(quantity=Q + 1), R.INVALID_QUANTITY),
    ("quantity too large", limit(quantity=MAX_UNITS), R.INVALID_QUANTITY),
    ("notional too large", limit(quantity=10**12, price=10**18), R.INVALID_QUANTITY),
    ("below min quantity", limit(quantity=10**4), R.BELOW_MIN_QUANTITY),
    ("below min notional", limit(quantity=10**5, price=1000 * 10**8), R.BELOW_MIN_NOTIONAL),
    ("post-only would take", limit(price=51_000 * 10**8, post_only=True), R.POST_ONLY_WOULD_TAKE),
    ("limit buy without quote", limit(quantity=10**9, price=49_000 * 10**8), R.INSUFFICIENT_FUNDS),
    ("limit sell without base", limit(SELL, quantity=2 * 10**8, price=60_000 * 10**8), R.INSUFFICIENT_FUNDS),
    # --------------------------------------------------------------- conditional orders
    ("stop without stop price", stop(stop_price=None), R.INVALID_PRICE),
    ("stop price zero", stop(stop_price=0), R.INVALID_PRICE),
    ("stop price off tick", stop(stop_price=41_000 * 10**8 + 1), R.INVALID_PRICE),
    ("stop price too large", stop(stop_price=MAX_UNITS), R.INVALID_PRICE),
    ("stop post-only", stop(post_only=True), R.INVALID_ORDER),
    ("stop-limit without price", stop(price=None), R.INVALID_PRICE),
    ("stop-limit off lot", stop(quantity=Q + 1), R.INVALID_QUANTITY),
    ("stop-limit sell without base", stop(quantity=2 * 10**8), R.INSUFFICIENT_FUNDS),
    ("stop-market with price", stop(STOP_MARKET), R.INVALID_ORDER),
    ("stop-market FOK", stop(STOP_MARKET, price=None, time_in_force=TimeInForce.FOK), R.INVALID_ORDER),
    (
        "stop-market sell by quote",
        stop(STOP_MARKET, price=None, quantity=None, quote_quantity=P),
        R.INVALID_ORDER,
    ),
    (
        "stop-market buy by quantity",
        stop(STOP_MARKET, BUY, price=None, stop_price=60_000 * 10**8),
        R.INVALID_ORDER,
    ),
    (
        "take-profit buy without quote",
        stop(TP_MARKET, BUY, price=None, quantity=None, quote_quantity=10**13),
        R.INSUFFICIENT_FUNDS,
    ),
    (
        "take-profit below min notional",
        stop(TP_MARKET, BUY, price=None, quantity=None, quote_quantity=10**8),
        R.BELOW_MIN_NOTIONAL,
    ),
    ("stop price on a plain limit", limit(stop_price=P), R.INVALID_ORDER),
    ("reduce-only on a spot market", limit(reduce_only=True), R.INVALID_ORDER),
    # --------------------------------------------------------------- market orders
    ("market with price", market(quantity=Q, price=P), R.INVALID_ORDER),
    ("market post-only", market(quantity=Q, post_only=True), R.INVALID_ORDER),
    ("market with both sizes", market(quantity=Q, quote_quantity=P), R.INVALID_ORDER),
    ("market with no size", market(), R.INVALID_ORDER),
    ("market FOK by quote", market(quote_quantity=10**11, time_in_force=TimeInForce.FOK), R.INVALID_ORDER),
    ("market zero quote", market(quote_quantity=0), R.INVALID_QUANTITY),
    ("market quote too large", market(quote_quantity=MAX_UNITS), R.INVALID_QUANTITY),
    ("market quote below min notional", market(quote_quantity=10**8), R.BELOW_MIN_NOTIONAL),
    ("market quantity off lot", market(quantity=Q + 1), R.INVALID_QUANTITY),
    ("market quantity below min", market(quantity=10**4), R.BELOW_MIN_QUANTITY),
    ("market buy costs too much", market(quantity=2 * 10**7), R.INSUFFICIENT_FUNDS),
    ("market buy quote too much", market(quote_quantity=10_001 * 10**8), R.INSUFFICIENT_FUNDS),
    ("market sell without base", market(SELL, quantity=2 * 10**8), R.INSUFFICIENT_FUNDS),
    ("market sell quote needs base", market(SELL, quote_quantity=100_000 * 10**8), R.INSUFFICIENT_FUNDS),
    # --------------------------------------------------------------- cancels
    ("cancel missing order", CancelOrder(1, 10**9), R.ORDER_NOT_FOUND),
    ("cancel another account's order", CancelOrder(2, 0), R.ORDER_NOT_FOUND),  # id filled in below
    ("cancel-all unknown symbol", CancelAllOrders(1, "ETH-USDT"), R.UNKNOWN_SYMBOL),
    # --------------------------------------------------------------- credits
    ("credit unknown asset", Credit("c", 1, "ETH", 1, "t"), R.UNKNOWN_ASSET),
    ("credit fee account", Credit("c", FEE_ACCOUNT, "BTC", 1, "t"), R.ACCOUNT_NOT_ALLOWED),
    ("credit external account", Credit("c", EXTERNAL_ACCOUNT, "BTC", 1, "t"), R.ACCOUNT_NOT_ALLOWED),
    ("credit insurance account", Credit("c", INSURANCE_ACCOUNT, "BTC", 1, "t"), R.ACCOUNT_NOT_ALLOWED),
    ("credit account zero", Credit("c", 0, "BTC", 1, "t"), R.ACCOUNT_NOT_ALLOWED),
    ("credit zero", Credit("c", 1, "BTC", 0, "t"), R.INVALID_AMOUNT),
    ("credit negative", Credit("c", 1, "BTC", -1, "t"), R.INVALID_AMOUNT),
    ("credit too large", Credit("c", 1, "BTC", MAX_UNITS, "t"), R.INVALID_AMOUNT),
    ("credit overflows balance", Credit("c", 1, "BTC", MAX_UNITS - 10**8, "t"), R.INVALID_AMOUNT),
    # A repeated credit id is refused by the engine (its idempotency map spans restarts),
    # not by the core: see tests/engine.
    ("credit overflows issuance", Credit("c", 9, "BTC", MAX_UNITS - 10**8, "t"), R.INVALID_AMOUNT),
    # --------------------------------------------------------------- assets
    ("asset lower case", AddAsset("btc", 8), R.INVALID_ASSET),
    ("asset too short", AddAsset("B", 8), R.INVALID_ASSET),
    ("asset too long", AddAsset("ABCDEFGHIJKLM", 8), R.INVALID_ASSET),
    ("asset with dash", AddAsset("B-C", 8), R.INVALID_ASSET),
    ("asset negative scale", AddAsset("ETH", -1), R.INVALID_ASSET),
    ("asset scale too large", AddAsset("ETH", 19), R.INVALID_ASSET),
    ("rescale asset with balances", AddAsset("BTC", 6), R.ASSET_SCALE_LOCKED),
    # --------------------------------------------------------------- markets
    ("symbol not base-quote", upsert(symbol="BTC-USD"), R.INVALID_MARKET),
    ("symbol lower case", upsert(symbol="btc-usdt", base_asset="btc", quote_asset="usdt"), R.INVALID_MARKET),
    ("market unknown asset", upsert(symbol="ETH-USDT", base_asset="ETH"), R.UNKNOWN_ASSET),
    ("market base equals quote", upsert(symbol="BTC-BTC", quote_asset="BTC"), R.INVALID_MARKET),
    ("zero tick", upsert(tick_size=0), R.INVALID_MARKET),
    ("zero lot", upsert(lot_size=0, min_quantity=0), R.INVALID_MARKET),
    ("tick x lot not whole", upsert(tick_size=1, lot_size=10**7, min_quantity=10**7), R.INVALID_MARKET),
    ("min quantity below lot", upsert(min_quantity=10**3), R.INVALID_MARKET),
    ("min quantity off lot", upsert(min_quantity=10**4 + 1), R.INVALID_MARKET),
    ("negative min notional", upsert(min_notional=-1), R.INVALID_MARKET),
    ("fee above 10 %", upsert(taker_fee_ppm=100_001), R.INVALID_MARKET),
    ("negative fee", upsert(maker_fee_ppm=-1), R.INVALID_MARKET),
    # --------------------------------------------------------------- anything else
    ("unknown command", Bogus(), R.INVALID_ORDER),
]


def prepared() -> tuple[Harness, int]:
    """Account 1: 1 BTC, 10000 USDT, a 0.1 BTC bid at 45000 with client id "resting" (5500 USDT
    left available); account 2 rests 0.2 BTC at 50000 and 2 BTC at 40000. Min quantity 0.001,
    min notional 10 USDT."""
    h = make_harness(min_quantity=10**5, min_notional=10 * 10**8)
    h.ok(Credit("first-credit", 1, "BTC", 10**8, "test"))
    h.fund(1, usdt="10000")
    h.fund(2, btc="1", usdt="100000")
    h.ok(PlaceOrder(2, SYMBOL, SELL, LIMIT, quantity=2 * Q, price=P))
    h.ok(PlaceOrder(2, SYMBOL, BUY, LIMIT, quantity=20 * Q, price=40_000 * 10**8))
    resting = h.ok(limit(price=45_000 * 10**8, client_order_id="resting")).order
    assert resting is not None
    h.changes()
    return h, resting.order_id


def assert_changes_nothing(h: Harness, command: Command) -> RejectCode | None:
    before = fingerprint(h.core)
    depth_before = h.core.depth(SYMBOL, 100)
    outcome = h.apply(command)
    assert fingerprint(h.core) == before
    assert h.core.depth(SYMBOL, 100) == depth_before
    assert h.core.state_hash() == h.core.compute_state_hash()
    changes = h.changes()
    assert (changes.orders, changes.trades, changes.ledger, changes.balances) == ([], [], [], [])
    assert (changes.assets, changes.markets, changes.books_changed) == ([], [], [])
    assert outcome.order is None and outcome.trades == () and outcome.balances == ()
    check_invariants(h.core)
    return outcome.reject


@pytest.mark.parametrize(("name", "command", "code"), CASES, ids=[c[0] for c in CASES])
def test_reject_has_its_code_and_changes_nothing(name: str, command: Command, code: RejectCode) -> None:
    h, resting_id = prepared()
    if isinstance(command, CancelOrder) and command.account_id == 2:
        command = CancelOrder(2, resting_id)
    assert assert_changes_nothing(h, command) is code


def test_every_reject_code_except_halted_and_open_order_limit_is_covered_above() -> None:
    # DUPLICATE_CREDIT_ID is answered by the engine before the core sees the command.
    covered = {code for _, _, code in CASES} | {
        R.MARKET_HALTED,
        R.TOO_MANY_OPEN_ORDERS,
        R.DUPLICATE_CREDIT_ID,
        R.STOP_WOULD_TRIGGER,  # needs a last trade price: tests/core/test_conditional.py
    }
    assert covered == set(RejectCode)


def test_halted_market_reject_changes_nothing() -> None:
    h, _ = prepared()
    h.ok(upsert(status="halted", min_quantity=10**5, min_notional=10 * 10**8))
    h.changes()
    assert assert_changes_nothing(h, limit(price=45_000 * 10**8)) is R.MARKET_HALTED
    assert assert_changes_nothing(h, market(SELL, quantity=Q)) is R.MARKET_HALTED


def test_too_many_open_orders_reject_changes_nothing() -> None:
    h = make_harness()
    h.fund(1, usdt="1000000")
    for i in range(MAX_OPEN_ORDERS_PER_ACCOUNT):
        h.ok(PlaceOrder(1, SYMBOL, BUY, LIMIT, quantity=10**4, price=(10_000 + i) * 10**8))
    h.changes()
    one_more = PlaceOrder(1, SYMBOL, BUY, LIMIT, quantity=10**4, price=9_000 * 10**8)
    assert assert_changes_nothing(h, one_more) is R.TOO_MANY_OPEN_ORDERS
    h.fund(2, usdt="1000")  # another account is not limited by account 1's orders
    assert h.apply(msgspec.structs.replace(one_more, account_id=2)).reject is None


def test_rejects_in_between_do_not_disturb_a_replay() -> None:
    h, _ = prepared()
    for _, command, _ in CASES:
        if not isinstance(command, CancelOrder | Bogus):
            h.apply(command)
    assert h.replay().state_hash() == h.core.state_hash()


def test_reject_sequence_still_advances_the_clock() -> None:
    h, _ = prepared()
    seq = h.core.last_seq
    assert h.apply(CancelOrder(1, 10**9)).reject is R.ORDER_NOT_FOUND
    assert h.core.last_seq == seq + 1
