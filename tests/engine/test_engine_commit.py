"""Batching, answer-after-commit and what is in the database when ``execute`` returns."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from sqlalchemy import func, select

from cambist.core.checks import check_invariants
from cambist.core.events import Changes, OrderView
from cambist.core.types import RejectCode
from cambist.store.trading import JournalItem, TradingStore

from .support import (
    LOT,
    MID,
    SYMBOL,
    TABLES,
    USDT,
    EngineFactory,
    Workload,
    assert_ledger_matches_balances,
    bootstrap,
    core_balances,
    depth_from_rows,
    limit,
    open_order_rows,
    rows,
    scalar,
    stored_balances,
)


class RecordingStore:
    """Delegates to the real store and records what each ``write_batch`` committed."""

    def __init__(self, inner: TradingStore, delay_s: float = 0.0) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.committed_seqs: set[int] = set()
        self.batch_sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write_batch(
        self, journal: list[JournalItem], changes: Changes, input_position: str | None = None
    ) -> None:
        time.sleep(self.delay_s)  # a slower disk: more commands wait, batches grow
        self.inner.write_batch(journal, changes, input_position)
        self.batch_sizes.append(len(journal))
        self.committed_seqs.update(seq for seq, *_ in journal)


def journal_has(engines: EngineFactory, seq: int) -> bool:
    journal = TABLES["journal"]
    return scalar(engines.db, select(func.count()).where(journal.c.seq == seq)) == 1


async def test_concurrent_commands_are_batched_and_answered_only_after_commit(engines: EngineFactory) -> None:
    recorder: RecordingStore | None = None

    def wrap(store: TradingStore) -> Any:
        nonlocal recorder
        recorder = RecordingStore(store, delay_s=0.005)
        return recorder

    engine = await engines.open(wrap, batch_max=32)
    assert recorder is not None
    await bootstrap(engine)
    batches_before = len(recorder.batch_sizes)
    workload = Workload(seed=1)
    commands = [workload.next() for _ in range(200)]  # limit orders only: nothing open yet
    answered_uncommitted: list[int] = []
    missing_in_db: list[int] = []

    async def submit(command: Any) -> None:
        outcome = await engine.execute(command)
        assert outcome.reject is None, outcome
        if outcome.seq not in recorder.committed_seqs:
            answered_uncommitted.append(outcome.seq)
        if not journal_has(engines, outcome.seq):
            missing_in_db.append(outcome.seq)

    await asyncio.gather(*(submit(c) for c in commands))

    assert answered_uncommitted == []
    assert missing_in_db == []
    sizes = recorder.batch_sizes[batches_before:]
    assert sum(sizes) == len(commands)
    assert len(sizes) < len(commands), "concurrent commands were not batched"
    assert max(sizes) <= 32, "a batch exceeded batch_max"
    assert max(sizes) > 1
    check_invariants(engine.core)

    # The same clientOrderId several times in one batch: applied once, the others duplicates.
    far_below = MID - 10_000 * USDT  # rests: nothing sells that low
    same = limit(1, "buy", far_below, 3 * LOT, "twice")
    locked = engine.core.balance(1, "USDT").locked
    outcomes = await asyncio.gather(*(engine.execute(same) for _ in range(5)))
    assert len([o for o in outcomes if o.reject is None]) == 1
    assert {o.reject for o in outcomes if o.reject} == {RejectCode.DUPLICATE_CLIENT_ORDER_ID}
    orders = TABLES["orders"]
    assert scalar(engines.db, select(func.count()).where(orders.c.client_order_id == "twice")) == 1
    assert engine.core.balance(1, "USDT").locked == locked + 3 * LOT * far_below // 10**8


def assert_order_row(engines: EngineFactory, view: OrderView) -> None:
    stored = rows_by_id(engines, view.order_id)
    expected = msgspec.to_builtins(view)
    assert {k: stored[k] for k in expected} == expected


def rows_by_id(engines: EngineFactory, order_id: int) -> dict[str, Any]:
    orders = TABLES["orders"]
    with engines.db.connect() as conn:
        row = conn.execute(select(orders).where(orders.c.order_id == order_id)).one()
    return dict(row._mapping)


async def test_every_row_is_in_the_database_when_execute_returns(engines: EngineFactory) -> None:
    engine = await engines.open(batch_max=8)
    await bootstrap(engine)
    workload = Workload(seed=7)
    trades_seen = 0
    for step in range(80):
        command = workload.next()
        outcome = await engine.execute(command)
        assert outcome.reject in (None, RejectCode.ORDER_NOT_FOUND), outcome
        workload.observe(outcome)
        # Read back at once, on other connections: all of it must already be committed.
        assert journal_has(engines, outcome.seq)
        for view in (outcome.order, *outcome.orders):
            if view is not None:
                assert_order_row(engines, view)
        trades = TABLES["trades"]
        for trade in outcome.trades:
            with engines.db.connect() as conn:
                stored = conn.execute(select(trades).where(trades.c.trade_id == trade.trade_id)).one()
            assert dict(stored._mapping) == msgspec.to_builtins(trade)
        trades_seen += len(outcome.trades)
        balances = stored_balances(engines.db)
        for balance in outcome.balances:
            key = (balance.account_id, balance.asset)
            assert balances.get(key, (0, 0)) == (balance.available, balance.locked)
        if step % 40 == 0:
            assert_ledger_matches_balances(engines.db)
    assert trades_seen > 10, "the workload should cross"
    assert_ledger_matches_balances(engines.db)
    assert stored_balances(engines.db) == core_balances(engine.core)
    stored_open = open_order_rows(engines.db)
    assert set(stored_open) == set(engine.core.orders)
    bids, asks = engine.core.depth(SYMBOL, 1000)
    assert depth_from_rows(stored_open) == (dict(bids), dict(asks))
    fills = rows(engines.db, "fills", "id")
    assert len(fills) == 2 * trades_seen
    state = rows(engines.db, "engine_state", "id")[0]
    assert state["last_seq"] == engine.core.last_seq
    assert state["state_hash"] == engine.core.state_hash()
