"""DemoLiquidity driving the real engine and SQLite store, then a restart of both."""

from __future__ import annotations

import asyncio
import random

from cambist.core.checks import check_invariants
from cambist.core.events import MarketView
from cambist.defaults import default_commands
from cambist.demo.market_maker import EXPECTED_REJECTS, DemoLiquidity, DemoTuning
from cambist.engine.engine import Engine
from cambist.store import migrate
from cambist.store.base import create_db_engine
from cambist.store.trading import TradingStore

MAKER, TAKER = 11, 12
SYMBOLS = ("BTC-USDT", "ETH-BTC", "ETH-USDT")


def make_demo(engine: Engine, seed: int, run_id: str) -> DemoLiquidity:
    def markets() -> list[MarketView]:
        return [market.view for market in engine.core.markets.values()]

    return DemoLiquidity(
        execute=engine.execute,
        markets=markets,
        assets=lambda: dict(engine.core.assets),
        maker_account=MAKER,
        taker_account=TAKER,
        rng=random.Random(seed),
        refresh_interval_s=0.0,
        tuning=DemoTuning(backoff_s_min=0.0, backoff_s_max=0.05),
        run_id=run_id,
    )


async def run_rounds(demo: DemoLiquidity, rounds: int) -> None:
    task = asyncio.create_task(demo.run())
    while demo.rounds < rounds:
        assert not task.done()
        await asyncio.sleep(0.01)
    await demo.stop(cancel_orders=False)  # leave the quotes, as a crash would


async def test_demo_through_the_engine_survives_a_restart(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    db = create_db_engine(sqlite_url, sqlite_synchronous="OFF")
    try:
        engine = Engine(TradingStore(db))
        await engine.start()
        for command in default_commands():
            assert (await engine.execute(command)).reject is None
        first = make_demo(engine, seed=1, run_id="one")
        await run_rounds(first, 30)
        assert first.trades > 0
        assert set(first.rejects) <= EXPECTED_REJECTS, first.rejects
        left_behind = engine.core.open_order_count.get(MAKER, 0)
        assert left_behind > 0
        state = engine.core.state_hash()
        await engine.stop()

        engine = Engine(TradingStore(db))  # recovers from the store and proves the state hash
        await engine.start()
        assert engine.core.state_hash() == state
        second = make_demo(engine, seed=2, run_id="two")
        await run_rounds(second, 10)
        core = engine.core
        for symbol in SYMBOLS:
            bids, asks = core.depth(symbol, 1)
            assert bids and asks, symbol
        # The previous run's orders were canceled: only this run's ladder rests.
        assert core.open_order_count.get(MAKER, 0) == second.open_orders <= 60
        assert set(second.rejects) <= EXPECTED_REJECTS, second.rejects
        await second.stop()  # this time take the quotes off
        assert core.open_order_count.get(MAKER, 0) == 0
        check_invariants(core)
        await engine.stop()
    finally:
        db.dispose()
