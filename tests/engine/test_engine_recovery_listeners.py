"""A commit whose answer is lost: the batch is in the store but was never published, so the
engine tells its recovery listeners, which reload what they derive (the market-data hub)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from cambist.core.commands import Credit, PlaceOrder
from cambist.core.events import AssetView
from cambist.core.exchange import ExchangeCore
from cambist.core.types import OrderType, Side
from cambist.defaults import default_commands
from cambist.engine.engine import Engine, EngineUnavailable
from cambist.marketdata.hub import MarketDataHub
from cambist.store.base import create_db_engine
from cambist.store.migrate import upgrade
from cambist.store.trading import TradingStore


class CommitThenRaise:
    """Commits, then fails as if the connection dropped before the COMMIT answer."""

    def __init__(self, inner: TradingStore) -> None:
        self.inner = inner
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write_batch(self, journal: Any, changes: Any, input_position: str | None = None) -> None:
        self.inner.write_batch(journal, changes, input_position)
        if self.armed:
            self.armed = False
            raise ConnectionError("connection lost while reading the COMMIT answer")


async def test_hub_reloads_after_a_commit_whose_answer_was_lost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/lost.db"
    upgrade(url)
    store = CommitThenRaise(TradingStore(create_db_engine(url)))
    engine = Engine(store)  # type: ignore[arg-type]
    await engine.start()
    hub = MarketDataHub()

    def reload(core: ExchangeCore) -> None:
        hub.reload(
            [AssetView(a, s) for a, s in core.assets.items()],
            [m.view for m in core.markets.values()],
            [engine.depth_snapshot(symbol) for symbol in core.markets],
        )

    engine.subscribe(hub.on_commit)
    engine.on_recovered(reload)
    try:
        for command in default_commands():
            await engine.execute(command)
        await engine.execute(Credit("c1", 1, "USDT", 10**12, "t"))
        version = hub.trade_version("BTC-USDT")
        store.armed = True
        order = PlaceOrder(1, "BTC-USDT", Side.BUY, OrderType.LIMIT, quantity=10**6, price=50_000 * 10**6)
        with contextlib.suppress(EngineUnavailable):
            await engine.execute(order)
        for _ in range(500):
            if engine.available:
                break
            await asyncio.sleep(0.01)
        assert engine.available
        assert engine.core.depth("BTC-USDT", 10)[0] == [(50_000 * 10**6, 10**6)]
        assert hub.depth("BTC-USDT").bids == [(50_000 * 10**6, 10**6)]
        assert hub.trade_version("BTC-USDT") > version  # cached tickers are invalidated
    finally:
        await engine.stop()
