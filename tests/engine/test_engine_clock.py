"""The engine's clock: it sends ExpireOrders by itself once a GTD order is due, journaled, so
the expiry replays and survives a restart (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from cambist.core.commands import PlaceOrder
from cambist.core.types import OrderStatus, OrderType, Side, TimeInForce
from cambist.engine.engine import wall_clock_ms
from cambist.engine.recovery import replay_journal

from .support import LOT, MID, SYMBOL, WAIT_S, EngineFactory, bootstrap


async def test_a_due_gtd_order_is_expired_by_the_engine_and_the_journal_replays_it(
    engines: EngineFactory,
) -> None:
    engine = await engines.open()
    await bootstrap(engine)
    expire = wall_clock_ms() + 600
    outcome = await engine.execute(
        PlaceOrder(
            1,
            SYMBOL,
            Side.SELL,
            OrderType.LIMIT,
            quantity=10 * LOT,
            price=MID,
            time_in_force=TimeInForce.GTD,
            expire_time=expire,
        )
    )
    assert outcome.order is not None and outcome.order.status is OrderStatus.NEW
    order_id = outcome.order.order_id
    async with asyncio.timeout(WAIT_S):
        while order_id in engine.core.orders:
            await asyncio.sleep(0.05)
    assert engine.core.next_expiry() is None
    state_hash = engine.core.state_hash()
    await engines.stop(engine)
    restarted = await engines.open()
    assert restarted.core.state_hash() == state_hash and order_id not in restarted.core.orders
    assert replay_journal(engines.store()).state_hash() == state_hash
