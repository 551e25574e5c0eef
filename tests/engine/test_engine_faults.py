"""Faults the engine must survive: a store failing mid-batch, a store down during recovery,
and a full inbox."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from cambist.core.checks import check_invariants
from cambist.core.commands import PlaceOrder
from cambist.core.events import Changes
from cambist.core.exchange import InvariantViolation
from cambist.core.types import RejectCode
from cambist.engine.engine import Engine, EngineOverloaded, EngineUnavailable
from cambist.engine.recovery import replay_journal
from cambist.store.trading import JournalItem, TradingStore

from .support import (
    LOT,
    MID,
    TABLES,
    TICK,
    WAIT_S,
    EngineFactory,
    Workload,
    assert_ledger_matches_balances,
    bootstrap,
    core_balances,
    limit,
    max_journal_seq,
    scalar,
    stored_balances,
    wait_until,
)


class InjectedFailure(RuntimeError):
    pass


LOST_ACK_DETAIL = "server closed the connection unexpectedly (host 10.1.2.3 port 5432)"


class FlakyStore:
    """The real store, made to fail on demand.

    ``fail_next_batch`` makes the next ``write_batch`` fail in the middle of its transaction
    (the journal and order rows are already sent when the balance upsert raises);
    ``fail_loads`` makes that many ``load_snapshot`` calls fail (the store is still down).
    Clearing ``release`` holds the failing write (a slow failure) until it is set again;
    ``stalled`` tells that it is being held.
    """

    def __init__(self, inner: TradingStore) -> None:
        self.inner = inner
        self.fail_next_batch = False
        self.fail_loads = 0
        self.failed_batches: list[list[int]] = []
        self.statements_before_failure = 0
        self.loads = 0
        self.lose_next_ack = False
        self.release = threading.Event()
        self.release.set()
        self.stalled = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load_snapshot(self) -> Any:
        self.loads += 1
        if self.fail_loads:
            self.fail_loads -= 1
            raise InjectedFailure("the store is down")
        return self.inner.load_snapshot()

    def write_batch(
        self, journal: list[JournalItem], changes: Changes, input_position: str | None = None
    ) -> None:
        if self.lose_next_ack:  # committed, but the answer to COMMIT never arrives
            self.lose_next_ack = False
            self.inner.write_batch(journal, changes, input_position)
            raise InjectedFailure(LOST_ACK_DETAIL)
        if not self.fail_next_batch:
            return self.inner.write_batch(journal, changes, input_position)
        self.fail_next_batch = False
        if not self.release.is_set():
            self.stalled.set()
            self.release.wait(WAIT_S)
        seen: list[str] = []

        def hook(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            seen.append(statement)
            if statement.lstrip().startswith("INSERT INTO balances"):
                self.statements_before_failure = len(seen) - 1
                raise InjectedFailure("the store failed mid-transaction")

        event.listen(self.inner.engine, "before_cursor_execute", hook)
        try:
            self.inner.write_batch(journal, changes, input_position)
        finally:
            event.remove(self.inner.engine, "before_cursor_execute", hook)
            self.failed_batches.append([seq for seq, *_ in journal])
        raise AssertionError("the injected failure did not fire")  # pragma: no cover


async def flaky_engine(engines: EngineFactory, **kwargs: Any) -> tuple[Engine, FlakyStore]:
    holder: list[FlakyStore] = []

    def wrap(store: TradingStore) -> Any:
        holder.append(FlakyStore(store))
        return holder[0]

    engine = await engines.open(wrap, **kwargs)
    return engine, holder[0]


def client_order_count(engines: EngineFactory, client_ids: list[str]) -> int:
    orders = TABLES["orders"]
    return int(scalar(engines.db, select(func.count()).where(orders.c.client_order_id.in_(client_ids))))


async def test_a_store_failure_fails_the_batch_and_the_engine_recovers(engines: EngineFactory) -> None:
    engine, flaky = await flaky_engine(engines, batch_max=64)
    await bootstrap(engine)
    await Workload(seed=11).run(engine, 60, concurrency=4)
    seq_before = max_journal_seq(engines.db)
    hash_before = engine.core.state_hash()
    balances_before = stored_balances(engines.db)

    commands = [
        limit(1 + i % 4, "buy" if i % 2 else "sell", MID + (i - 5) * 100 * TICK, 3 * LOT, f"f-{i}")
        for i in range(10)
    ]
    flaky.fail_next_batch = True
    results = await asyncio.gather(*(engine.execute(c) for c in commands), return_exceptions=True)

    assert len(flaky.failed_batches) == 1 and flaky.statements_before_failure > 0
    failed_seqs = flaky.failed_batches[0]
    assert 1 <= len(failed_seqs) <= len(commands)
    assert all(isinstance(r, EngineUnavailable) for r in results), results
    # Nothing of the failed batch reached the database.
    assert max_journal_seq(engines.db) == seq_before
    assert client_order_count(engines, [f"f-{i}" for i in range(len(commands))]) == 0
    assert stored_balances(engines.db) == balances_before

    # The engine rebuilds itself from the store, without help, and serves again.
    await wait_until(lambda: engine.available)
    assert engine.core.state_hash() == hash_before
    assert engine.core.last_seq == seq_before
    outcome = await engine.execute(limit(2, "buy", MID - 900 * TICK, 2 * LOT, "after"))
    assert outcome.reject is None and outcome.seq == seq_before + 1
    # The failed commands were absent, so their retries (same clientOrderIds) apply once.
    retried = await asyncio.gather(*(engine.execute(c) for c in commands))
    assert all(r.reject is None for r in retried)
    assert client_order_count(engines, [f"f-{i}" for i in range(len(commands))]) == len(commands)

    check_invariants(engine.core)
    assert_ledger_matches_balances(engines.db)
    assert stored_balances(engines.db) == core_balances(engine.core)
    assert replay_journal(engines.store()).state_hash() == engine.core.state_hash()
    live_hash = engine.core.state_hash()
    await engines.stop(engine)
    assert (await engines.open()).core.state_hash() == live_hash


async def test_a_failed_commit_also_fails_the_batches_applied_behind_it(engines: EngineFactory) -> None:
    """Batches are applied while the previous one is written: when that write fails, the ones
    applied behind it (in the core, not in the database) must fail too, and their
    clientOrderIds, remembered at apply time, must be usable again after the recovery."""
    engine, flaky = await flaky_engine(engines, batch_max=2)
    await bootstrap(engine)
    hash_before = engine.core.state_hash()
    seq_before = max_journal_seq(engines.db)

    def order(i: int) -> PlaceOrder:
        return limit(1 + i % 4, "buy" if i % 2 else "sell", MID + (i - 5) * 100 * TICK, 3 * LOT, f"p-{i}")

    flaky.fail_next_batch = True
    flaky.release.clear()
    first = asyncio.create_task(engine.execute(order(0)))
    await wait_until(flaky.stalled.is_set)  # batch N is being written (and will fail)
    behind = [asyncio.create_task(engine.execute(order(i))) for i in range(1, 9)]
    repeat = asyncio.create_task(engine.execute(order(0)))  # a duplicate of a doomed order
    await asyncio.sleep(0.05)  # the engine applies what it can behind the stalled write
    assert engine.core.last_seq > seq_before + 1, "nothing was applied behind the stalled write"
    flaky.release.set()
    results = await asyncio.wait_for(asyncio.gather(first, *behind, repeat, return_exceptions=True), WAIT_S)
    assert all(isinstance(r, EngineUnavailable) for r in results), results
    assert max_journal_seq(engines.db) == seq_before
    assert client_order_count(engines, [f"p-{i}" for i in range(9)]) == 0

    await wait_until(lambda: engine.available)
    assert engine.core.state_hash() == hash_before
    # None of them was applied, so every clientOrderId is free again.
    retried = await asyncio.gather(*(engine.execute(order(i)) for i in range(9)))
    assert [r.reject for r in retried] == [None] * 9
    assert client_order_count(engines, [f"p-{i}" for i in range(9)]) == 9
    assert (await engine.execute(order(0))).reject is RejectCode.DUPLICATE_CLIENT_ORDER_ID
    check_invariants(engine.core)
    assert_ledger_matches_balances(engines.db)
    assert replay_journal(engines.store()).state_hash() == engine.core.state_hash()


async def test_a_commit_whose_answer_is_lost_is_resolved_by_client_order_id(engines: EngineFactory) -> None:
    """The write committed but the engine was told it failed: the caller cannot be told
    "not applied" (it was), only "unknown", and a retry by clientOrderId resolves it."""
    engine, flaky = await flaky_engine(engines)
    await bootstrap(engine)
    order = limit(1, "buy", MID - 100 * TICK, 3 * LOT, "ambiguous")
    flaky.lose_next_ack = True
    with pytest.raises(EngineUnavailable) as failure:
        await engine.execute(order)
    message = str(failure.value)
    assert "not applied" not in message, message  # it was applied: that answer would be false
    assert "10.1.2.3" not in message, message  # the store's internals are not the client's business
    await wait_until(lambda: engine.available)
    assert client_order_count(engines, ["ambiguous"]) == 1
    assert any(o.client_order_id == "ambiguous" for o in engine.core.orders.values())
    assert (await engine.execute(order)).reject is RejectCode.DUPLICATE_CLIENT_ORDER_ID
    assert replay_journal(engines.store()).state_hash() == engine.core.state_hash()


async def test_an_invariant_violation_stops_the_engine_and_persists_nothing(
    engines: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await engines.open()
    await bootstrap(engine)
    seq_before = max_journal_seq(engines.db)
    hash_before = engine.core.state_hash()

    def broken_apply(*_args: Any) -> Any:
        raise InvariantViolation("negative balance for 7 BTC: -5/0")

    monkeypatch.setattr(engine.core, "apply", broken_apply)
    with pytest.raises(EngineUnavailable) as failure:
        await engine.execute(limit(1, "buy", MID, 2 * LOT, "never"))
    assert "BTC" not in str(failure.value)  # other accounts' balances are not the caller's business
    await wait_until(lambda: not engine.available)
    with pytest.raises(EngineUnavailable):  # stopped for good: a bug needs a person
        await engine.execute(limit(1, "buy", MID, 2 * LOT, "after"))
    assert max_journal_seq(engines.db) == seq_before
    await engines.stop(engine)
    assert (await engines.open()).core.state_hash() == hash_before


async def test_a_recovery_that_finds_a_tampered_store_stops_the_engine(
    engines: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    engine, flaky = await flaky_engine(engines)
    await bootstrap(engine)
    with engines.db.begin() as conn:  # changed behind the running engine's back
        conn.execute(
            text("UPDATE balances SET available = available + 1 WHERE account_id = 1 AND asset = 'BTC'")
        )
    flaky.fail_next_batch = True
    with pytest.raises(EngineUnavailable):
        await engine.execute(limit(1, "buy", MID, 2 * LOT, "x"))
    await wait_until(lambda: "does not prove itself" in caplog.text)
    assert not engine.available
    with pytest.raises(EngineUnavailable):
        await engine.execute(limit(1, "buy", MID, 2 * LOT, "y"))
    await engines.stop(engine)  # completes although the engine ended on an error


async def test_recovery_waits_for_the_store_to_come_back(engines: EngineFactory) -> None:
    engine, flaky = await flaky_engine(engines)
    await bootstrap(engine)
    hash_before = engine.core.state_hash()
    flaky.fail_next_batch = True
    flaky.fail_loads = 2  # the first two attempts to rebuild find the store still down
    with pytest.raises(EngineUnavailable):
        await engine.execute(limit(1, "buy", MID, 2 * LOT, "lost"))
    assert not engine.available
    with pytest.raises(EngineUnavailable):  # refused while recovering, not queued
        await engine.execute(limit(1, "buy", MID, 2 * LOT, "early"))
    await wait_until(lambda: engine.available)
    assert flaky.loads == 1 + 3  # the start, two failures, then success
    assert engine.core.state_hash() == hash_before
    assert (await engine.execute(limit(1, "buy", MID, 2 * LOT, "lost"))).reject is None
    assert client_order_count(engines, ["lost", "early"]) == 1


class GatedStore:
    """The real store whose ``write_batch`` waits for the gate to open (a stalled disk)."""

    def __init__(self, inner: TradingStore) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write_batch(
        self, journal: list[JournalItem], changes: Changes, input_position: str | None = None
    ) -> None:
        if not self.gate.is_set():
            self.waiting.set()
            if not self.gate.wait(WAIT_S):
                raise InjectedFailure("the gate was never opened")
        self.inner.write_batch(journal, changes, input_position)


async def test_a_full_inbox_sheds_load(engines: EngineFactory) -> None:
    holder: list[GatedStore] = []

    def wrap(store: TradingStore) -> Any:
        holder.append(GatedStore(store))
        return holder[0]

    engine = await engines.open(wrap, batch_max=1, inbox_max=2)
    gated = holder[0]
    await bootstrap(engine)
    gated.gate.clear()
    submitted: list[asyncio.Task[Any]] = []
    for i in range(10):  # a stalled commit: the pipeline takes a few, then the inbox fills
        if engine.inbox_depth() == 2:
            break
        command = limit(1, "buy", MID - 100 * TICK, 2 * LOT, f"q-{i}")
        submitted.append(asyncio.create_task(engine.execute(command)))
        await wait_until(gated.waiting.is_set)
        await asyncio.sleep(0.02)  # let the engine take what it can
    assert engine.inbox_depth() == 2
    with pytest.raises(EngineOverloaded):
        await engine.execute(limit(1, "buy", MID - 100 * TICK, 2 * LOT, "shed"))
    gated.gate.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*submitted), WAIT_S)
    assert all(o.reject is None for o in outcomes)
    accepted = [f"q-{i}" for i in range(len(submitted))]
    assert client_order_count(engines, accepted) == len(accepted)
    assert client_order_count(engines, ["shed"]) == 0
    # Shedding is temporary: once drained, the engine takes commands again.
    assert (await engine.execute(limit(1, "buy", MID - 100 * TICK, 2 * LOT, "shed"))).reject is None
