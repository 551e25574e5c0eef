"""What the engine persists (``take_changes``), the ledger, snapshot/restore and replay."""

from __future__ import annotations

from cambist.core.checks import check_invariants
from cambist.core.commands import decode_command, encode_command
from cambist.core.events import Changes
from cambist.core.exchange import ExchangeCore
from cambist.core.types import (
    EXTERNAL_ACCOUNT,
    FEE_ACCOUNT,
    Bucket,
    OrderStatus,
    SelfTradePrevention,
    TimeInForce,
)

from .support import SYMBOL, Harness, make_harness


def busy(h: Harness) -> None:
    """A little of everything: rests, crosses, partial fills, IOC, FOK, market, STP, cancels."""
    for account in (1, 2, 3):
        h.fund(account, btc="10", usdt="1000000")
    h.limit(1, "sell", "50000", "0.3")
    h.limit(2, "sell", "50000", "0.2")
    h.limit(3, "sell", "50100", "0.5", client_order_id="c3")
    h.limit(1, "buy", "49000", "0.4")
    h.limit(2, "buy", "49000", "0.1")
    h.limit(3, "buy", "50000", "0.4")  # fills 1 fully, 2 partly
    h.limit(1, "buy", "50100", "0.2", tif=TimeInForce.IOC)
    h.limit(2, "buy", "51000", "5", tif=TimeInForce.FOK)  # cannot fill: expires
    h.market(2, "sell", quantity="0.2")
    h.market(1, "buy", quote="1000", stp=SelfTradePrevention.EXPIRE_MAKER)
    h.limit(3, "buy", "50100", "0.1")  # hits its own ask: expire_maker
    h.cancel(1, 4)
    h.cancel_all(2)
    h.limit(2, "sell", "49500", "0.05")
    h.limit(1, "buy", "48000", "0.1")
    h.limit(3, "buy", "48000", "0.1")


def test_take_changes_reports_orders_trades_balances_ledger_and_then_starts_afresh() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    h.fund(2, usdt="100000")
    h.changes()
    maker = h.limit(1, "sell", "50000", "0.5").order
    taker = h.limit(2, "buy", "50000", "0.2").order
    assert maker and taker
    changes = h.changes()
    assert changes.last_seq == h.seq and changes.state_hash == h.core.state_hash()
    by_id = {o.order_id: o for o in changes.orders}
    assert set(by_id) == {maker.order_id, taker.order_id}
    assert by_id[maker.order_id].status is OrderStatus.PARTIALLY_FILLED
    assert by_id[maker.order_id].filled_quantity == h.btc("0.2")
    assert by_id[taker.order_id].status is OrderStatus.FILLED
    (trade,) = changes.trades
    assert (trade.maker_order_id, trade.taker_order_id) == (maker.order_id, taker.order_id)
    assert {(b.account_id, b.asset) for b in changes.balances} == {
        (1, "BTC"),
        (1, "USDT"),
        (2, "BTC"),
        (2, "USDT"),
        (FEE_ACCOUNT, "BTC"),
        (FEE_ACCOUNT, "USDT"),
    }
    for balance in changes.balances:
        assert (balance.available, balance.locked) == h.balance(balance.account_id, balance.asset)
    assert {e.kind for e in changes.ledger} == {"hold", "trade", "fee"}
    assert [e.ref for e in changes.ledger if e.kind in ("trade", "fee")] == [str(trade.trade_id)] * 6
    assert changes.books_changed == [SYMBOL]
    assert changes.next_order_id == h.core.next_order_id and changes.next_trade_id == trade.trade_id + 1
    assert_posting_ids_are_new(changes)
    empty = h.changes()
    assert (empty.orders, empty.trades, empty.ledger, empty.balances, empty.books_changed) == ([],) * 5


def assert_posting_ids_are_new(changes: Changes) -> None:
    postings = [e.posting_id for e in changes.ledger]
    assert postings == sorted(postings) and max(postings) < changes.next_posting_id


def test_ledger_postings_sum_to_zero_and_balances_equal_the_sum_of_their_entries() -> None:
    h = make_harness()  # assets and market exist, no balances yet, changes taken
    busy(h)
    ledger = h.changes().ledger
    per_posting: dict[tuple[int, str], int] = {}
    per_asset: dict[str, int] = {}
    per_bucket: dict[tuple[int, str, Bucket], int] = {}
    for entry in ledger:
        per_posting[(entry.posting_id, entry.asset)] = (
            per_posting.get((entry.posting_id, entry.asset), 0) + entry.delta
        )
        per_asset[entry.asset] = per_asset.get(entry.asset, 0) + entry.delta
        key = (entry.account_id, entry.asset, entry.bucket)
        per_bucket[key] = per_bucket.get(key, 0) + entry.delta
    assert set(per_posting.values()) == {0}
    assert per_asset == {"BTC": 0, "USDT": 0}
    for (account, asset), (available, locked) in h.core.balances.items():
        assert per_bucket.get((account, asset, Bucket.AVAILABLE), 0) == available
        assert per_bucket.get((account, asset, Bucket.LOCKED), 0) == locked
    assert h.core.balance(EXTERNAL_ACCOUNT, "BTC").available == -h.btc("30")
    # Each trade's legs and fees sum to zero per asset.
    trade_sums: dict[tuple[str, str], int] = {}
    for entry in ledger:
        if entry.kind in ("trade", "fee"):
            trade_sums[(entry.ref, entry.asset)] = trade_sums.get((entry.ref, entry.asset), 0) + entry.delta
    assert trade_sums and set(trade_sums.values()) == {0}
    check_invariants(h.core)


def test_restore_from_snapshot_gives_the_same_state_and_the_same_queue_order() -> None:
    h = make_harness()
    busy(h)
    for account in (4, 5, 6):
        h.fund(account, btc="1")
        h.limit(account, "sell", "52000", "0.1")  # three makers queued at one price
    snapshot = h.core.snapshot()
    restored = ExchangeCore.restore(snapshot)
    assert restored.state_hash() == h.core.state_hash() == restored.compute_state_hash()
    assert restored.snapshot() == snapshot
    check_invariants(restored)
    # The restored queues fill in the same order as the running core's.
    twin = Harness(restored, 8, seq=h.seq)
    h.fund(7, usdt="100000")
    twin.fund(7, usdt="100000")
    original = h.limit(7, "buy", "52000", "0.25")
    again = twin.limit(7, "buy", "52000", "0.25")
    assert original == again
    assert [t.maker_account_id for t in original.trades if t.price == h.usdt("52000")] == [4, 5, 6]
    assert restored.state_hash() == h.core.state_hash()


def test_restore_of_an_empty_core() -> None:
    core = ExchangeCore()
    assert ExchangeCore.restore(core.snapshot()).state_hash() == core.state_hash()


def test_journal_replay_through_the_codec_gives_the_same_state_hash() -> None:
    h = make_harness()
    busy(h)
    payloads = [encode_command(command) for command in h.journal]
    fresh = ExchangeCore()
    outcomes = [fresh.apply(decode_command(p), seq, seq * 1000) for seq, p in enumerate(payloads, start=1)]
    assert fresh.state_hash() == h.core.state_hash() == fresh.compute_state_hash()
    assert [decode_command(p) for p in payloads] == h.journal
    assert any(o.trades for o in outcomes)
    replayed = h.replay()
    assert replayed.snapshot() == h.core.snapshot()


def test_incremental_state_hash_tracks_every_command() -> None:
    h = make_harness()
    seen = {h.core.state_hash()}
    for account in (1, 2, 3):
        h.fund(account, btc="10", usdt="1000000")
    h.limit(1, "sell", "50000", "0.3")
    h.limit(2, "buy", "50000", "0.1")
    assert h.core.state_hash() == h.core.compute_state_hash()
    assert h.core.state_hash() not in seen
