"""Restart: the core is rebuilt from the state tables, proved by the state hash, and agrees
with a replay of the journal; idempotency keys survive; a tampered store is refused."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from cambist.core.checks import check_invariants
from cambist.core.commands import Command, Credit
from cambist.core.types import OrderStatus, RejectCode
from cambist.engine.engine import Engine, EngineUnavailable
from cambist.engine.recovery import RecoveryError, replay_journal

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
    max_journal_seq,
    open_order_rows,
    scalar,
    stored_balances,
)


async def busy_engine(engines: EngineFactory, seed: int, commands: int = 300) -> Engine:
    engine = await engines.open(batch_max=16)
    await bootstrap(engine)
    await Workload(seed=seed).run(engine, commands, concurrency=8)
    return engine


async def test_restart_recovers_the_same_state_and_the_journal_replays_to_it(engines: EngineFactory) -> None:
    engine = await busy_engine(engines, seed=2)
    state_hash = engine.core.state_hash()
    snapshot = engine.core.snapshot()
    depth = engine.core.depth(SYMBOL, 1000)
    balances = core_balances(engine.core)
    assert engine.core.orders, "the workload should leave resting orders"
    await engines.stop(engine)

    again = await engines.open(batch_max=16)
    assert again.core.state_hash() == state_hash
    assert again.core.compute_state_hash() == state_hash
    assert again.core.snapshot() == snapshot
    assert again.core.depth(SYMBOL, 1000) == depth
    assert core_balances(again.core) == balances
    check_invariants(again.core)
    # The database agrees with the rebuilt core.
    assert stored_balances(engines.db) == balances
    assert depth_from_rows(open_order_rows(engines.db)) == (dict(depth[0]), dict(depth[1]))
    assert_ledger_matches_balances(engines.db)
    # Replaying the whole journal into a fresh core reaches the same state.
    replayed = replay_journal(engines.store())
    check_invariants(replayed)
    assert replayed.last_seq == again.core.last_seq == max_journal_seq(engines.db)
    assert replayed.state_hash() == state_hash
    assert replayed.snapshot() == snapshot

    # The recovered engine continues where it stopped, and the journal still replays to it.
    last_seq = again.core.last_seq
    workload = Workload(seed=22)
    for order_id, view in again.core.orders.items():  # let it cancel orders from before
        workload.open_orders[order_id] = view.account_id
    outcomes = await workload.run(again, 150, concurrency=8)
    assert min(o.seq for o in outcomes) == last_seq + 1
    check_invariants(again.core)
    replayed = replay_journal(engines.store())
    assert replayed.state_hash() == again.core.state_hash()
    assert replayed.snapshot() == again.core.snapshot()
    assert_ledger_matches_balances(engines.db)


# Each tampering: statements that change the stored state, and the ones that undo it.
TAMPERING = {
    "balance": (
        ["UPDATE balances SET available = available + 1 WHERE account_id = 1 AND asset = 'USDT'"],
        ["UPDATE balances SET available = available - 1 WHERE account_id = 1 AND asset = 'USDT'"],
    ),
    # Conservation still holds and nothing goes negative: only the state hash can tell.
    "balance moved between accounts": (
        [
            "UPDATE balances SET available = available - 1 WHERE account_id = 1 AND asset = 'BTC'",
            "UPDATE balances SET available = available + 1 WHERE account_id = 2 AND asset = 'BTC'",
        ],
        [
            "UPDATE balances SET available = available + 1 WHERE account_id = 1 AND asset = 'BTC'",
            "UPDATE balances SET available = available - 1 WHERE account_id = 2 AND asset = 'BTC'",
        ],
    ),
    "open order": (
        [
            "UPDATE orders SET priority = priority + 1000000 "
            "WHERE order_id = (SELECT MIN(order_id) FROM orders WHERE is_open)"
        ],
        [
            "UPDATE orders SET priority = priority - 1000000 "
            "WHERE order_id = (SELECT MIN(order_id) FROM orders WHERE is_open)"
        ],
    ),
    "recorded hash": (
        ["UPDATE engine_state SET state_hash = 'x' || state_hash"],
        ["UPDATE engine_state SET state_hash = substr(state_hash, 2)"],
    ),
}


def execute_sql(engines: EngineFactory, statements: list[str]) -> None:
    with engines.db.begin() as conn:
        for statement in statements:
            assert conn.execute(text(statement)).rowcount == 1, statement


async def test_a_tampered_store_is_refused(engines: EngineFactory) -> None:
    engine = await busy_engine(engines, seed=5, commands=100)
    state_hash = engine.core.state_hash()
    await engines.stop(engine)
    for name, (tamper, undo) in TAMPERING.items():
        execute_sql(engines, tamper)
        refused = await engines.open(start=False)
        with pytest.raises(EngineUnavailable):  # not started: nothing is taken
            await refused.execute(limit(1, "buy", MID, 2 * LOT))
        with pytest.raises(RecoveryError):
            await refused.start()
        assert not refused.available, name
        with pytest.raises(EngineUnavailable):
            await refused.execute(limit(1, "buy", MID, 2 * LOT))
        await engines.stop(refused)
        execute_sql(engines, undo)
    # Undone, the same store proves itself again.
    assert (await engines.open()).core.state_hash() == state_hash


async def test_idempotency_keys_survive_a_restart(engines: EngineFactory) -> None:
    engine = await engines.open()
    await bootstrap(engine)
    resting = limit(1, "sell", MID, 5 * LOT, "keep-1")
    taker = limit(3, "buy", MID, 5 * LOT, "take-1")  # fills the resting order: both close
    later = limit(1, "sell", MID + 10 * USDT, 2 * LOT, "rest-2")  # stays open
    credit = Credit("bonus-1", 2, "USDT", 100 * USDT, "bonus")
    for command in (resting, taker, later, credit):
        assert (await engine.execute(command)).reject is None
    assert (await engine.execute(taker)).reject is RejectCode.DUPLICATE_CLIENT_ORDER_ID
    state_hash = engine.core.state_hash()
    seq = max_journal_seq(engines.db)
    balances = stored_balances(engines.db)
    await engines.stop(engine)
    with pytest.raises(EngineUnavailable):  # a stopped engine takes nothing
        await engine.execute(credit)

    again = await engines.open()
    expected: dict[Command, RejectCode] = {
        resting: RejectCode.DUPLICATE_CLIENT_ORDER_ID,
        taker: RejectCode.DUPLICATE_CLIENT_ORDER_ID,
        later: RejectCode.DUPLICATE_CLIENT_ORDER_ID,
        credit: RejectCode.DUPLICATE_CREDIT_ID,
    }
    for repeated, reject in expected.items():
        assert (await again.execute(repeated)).reject is reject
    # Nothing was applied twice: no journal entry, no balance change, no second row.
    assert again.core.state_hash() == state_hash
    assert max_journal_seq(engines.db) == seq
    assert stored_balances(engines.db) == balances
    orders, ledger = TABLES["orders"], TABLES["ledger_entries"]
    for account, client_id in ((1, "keep-1"), (3, "take-1"), (1, "rest-2")):
        query = select(func.count()).where(
            orders.c.account_id == account, orders.c.client_order_id == client_id
        )
        assert scalar(engines.db, query) == 1
    assert scalar(engines.db, select(func.count()).where(ledger.c.ref == "bonus-1")) == 2
    statuses = {v.client_order_id: v.status for v in again.core.orders.values()}
    assert statuses == {"rest-2": OrderStatus.NEW}
    # The key is per account: another account may use the same clientOrderId.
    assert (await again.execute(limit(2, "sell", MID + 20 * USDT, 2 * LOT, "keep-1"))).reject is None
