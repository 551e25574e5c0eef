"""The engine's way back: ``load_snapshot``, the recorded state hash and ``journal_since``."""

from __future__ import annotations

import pytest
from store_builders import T0, asset, balance, changes, journal, market, order

from cambist.core.commands import CancelOrder, decode_command
from cambist.core.events import CoreSnapshot
from cambist.core.types import OrderStatus
from cambist.store import trading
from cambist.store.trading import TradingStore


def test_an_empty_store_gives_an_empty_snapshot(store: TradingStore) -> None:
    assert store.load_snapshot() == (
        CoreSnapshot(
            last_seq=0,
            last_time=0,
            next_order_id=1,
            next_trade_id=1,
            next_posting_id=1,
            assets=[],
            markets=[],
            balances=[],
            open_orders=[],
        ),
        None,
    )


def test_snapshot_round_trip_keeps_queue_priority(store: TradingStore) -> None:
    first = [order(n, priority=n) for n in range(1, 7)]
    store.write_batch(
        journal(1, 6),
        changes(
            6,
            assets=[asset("USDT", 6), asset("BTC")],
            markets=[market()],
            orders=first,
            balances=[balance(2, "USDT", 7), balance(1, "USDT", 5, 3), balance(1, "BTC", 1)],
        ),
    )
    filled = order(2, status=OrderStatus.FILLED, priority=2, seq=7)
    requeued = order(5, priority=8, seq=8)  # amended upwards: loses its place, goes last
    stop = order(7, status=OrderStatus.UNTRIGGERED, priority=7, seq=7)
    twin_a, twin_b = order(9, priority=9, seq=9), order(8, priority=9, seq=9)  # a tie: by order id
    store.write_batch(
        journal(7, 3),
        changes(9, orders=[twin_a, filled, requeued, stop, twin_b], state_hash="abc123"),
    )

    snapshot, state_hash = store.load_snapshot()
    assert state_hash == "abc123"
    assert [o.order_id for o in snapshot.open_orders] == [1, 3, 4, 6, 7, 5, 8, 9]
    assert snapshot.open_orders[5] == requeued and snapshot.open_orders[4] == stop
    assert (snapshot.last_seq, snapshot.last_time) == (9, T0 + 9)
    assert (snapshot.next_order_id, snapshot.next_trade_id, snapshot.next_posting_id) == (1009, 2009, 3009)
    assert snapshot.assets == [asset("BTC"), asset("USDT", 6)]
    assert snapshot.markets == [market()]
    assert snapshot.balances == [balance(1, "BTC", 1), balance(1, "USDT", 5, 3), balance(2, "USDT", 7)]


def test_journal_since_replays_in_order(store: TradingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write_batch(journal(1, 3), changes(3))
    store.write_batch(journal(4, 4), changes(7))

    entries = list(store.journal_since(0, 100))
    assert [(seq, time) for seq, time, _ in entries] == [(s, T0 + s) for s in range(1, 8)]
    assert decode_command(entries[3][2]) == CancelOrder(account_id=1, order_id=4)
    assert [seq for seq, _, _ in store.journal_since(3, 2)] == [4, 5]
    assert list(store.journal_since(7, 10)) == []

    monkeypatch.setattr(trading, "JOURNAL_PAGE_ROWS", 2)  # force several pages
    assert [seq for seq, _, _ in store.journal_since(0, 100)] == list(range(1, 8))
    assert [seq for seq, _, _ in store.journal_since(1, 5)] == [2, 3, 4, 5, 6]
    assert [seq for seq, _, _ in store.journal_since(1, 4)] == [2, 3, 4, 5]
