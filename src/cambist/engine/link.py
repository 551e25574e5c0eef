"""How a gateway reaches the engine: the ``EngineLink`` port.

A gateway (the API and the WebSocket fan-out) needs four things from the engine: send a
command and get its committed outcome, know whether the engine is taking commands, follow
the committed batches, and start over from a whole market state when it cannot follow them
(at start, after a missed batch, after the engine rebuilt itself).

- ``LocalEngineLink``: the engine runs in this process (``cambist serve``).
- ``cambist.bus.redis_link.RedisEngineLink``: the engine is another process, reached over
  Redis (``cambist gateway``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cambist.core.commands import Command
from cambist.core.events import AssetView, MarketView, Outcome
from cambist.core.exchange import ExchangeCore
from cambist.engine.engine import DEPTH_SNAPSHOT_LEVELS, CommittedBatch, DepthSnapshot, Engine
from cambist.store.trading import TradingStore

BatchListener = Callable[[CommittedBatch], None]


@dataclass(frozen=True, slots=True)
class MarketState:
    """Reference data and every book's depth, as of one committed sequence number."""

    sequence: int
    assets: list[AssetView]
    markets: list[MarketView]
    depth: list[DepthSnapshot]


StateListener = Callable[[MarketState], None]


def market_state_of(core: ExchangeCore, levels: int = DEPTH_SNAPSHOT_LEVELS) -> MarketState:
    sequence = core.last_seq
    depth = []
    for symbol in core.markets:
        bids, asks = core.depth(symbol, levels)
        depth.append(DepthSnapshot(symbol, sequence, bids, asks))
    return MarketState(
        sequence,
        [AssetView(asset, scale) for asset, scale in core.assets.items()],
        [market.view for market in core.markets.values()],
        depth,
    )


def load_market_state(store: TradingStore) -> MarketState:
    """The committed market state, read from the store in one database snapshot.

    The books are rebuilt by the core itself from the open orders, so depth is computed by
    exactly the engine's rules. Balances are not read: a gateway never needs them whole.
    """
    snapshot, _ = store.load_snapshot(with_balances=False)
    return market_state_of(ExchangeCore.restore(snapshot))


class EngineLink(Protocol):
    @property
    def available(self) -> bool:
        """The engine takes commands now (False: answer 503 without sending)."""
        ...

    @property
    def last_seq(self) -> int:
        """The last committed sequence number this gateway knows of."""
        ...

    def inbox_depth(self) -> int: ...

    async def execute(self, command: Command) -> Outcome:
        """The committed outcome; ``EngineUnavailable`` / ``EngineOverloaded`` otherwise."""
        ...

    def subscribe(self, listener: BatchListener) -> None:
        """Called with every committed batch, in sequence order."""
        ...

    def on_state(self, listener: StateListener) -> None:
        """Called with a whole market state whenever batches could not be followed."""
        ...

    def market_state(self) -> MarketState:
        """The state to start from (valid after ``start``)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class LocalEngineLink:
    """The engine in this process: calls go straight to it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def available(self) -> bool:
        return self.engine.available

    @property
    def last_seq(self) -> int:
        return self.engine.last_seq

    def inbox_depth(self) -> int:
        return self.engine.inbox_depth()

    async def execute(self, command: Command) -> Outcome:
        return await self.engine.execute(command)

    def subscribe(self, listener: BatchListener) -> None:
        self.engine.subscribe(listener)

    def on_state(self, listener: StateListener) -> None:
        self.engine.on_recovered(lambda core: listener(market_state_of(core)))

    def market_state(self) -> MarketState:
        return market_state_of(self.engine.core)

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()
