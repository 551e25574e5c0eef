"""What the gateway serves without asking the engine: reference data and order-book depth.

The hub is fed by the engine's committed batches (in process when embedded; over the event
fan-out when distributed), so it only ever shows committed state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from cambist.core.events import AssetView, MarketView
from cambist.engine.engine import CommittedBatch, DepthSnapshot


class MarketDataHub:
    def __init__(self) -> None:
        self.assets: dict[str, int] = {}
        self.markets: dict[str, MarketView] = {}
        self._depth: dict[str, DepthSnapshot] = {}
        self._trade_versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def load(
        self, assets: Iterable[AssetView], markets: Iterable[MarketView], depth: Iterable[DepthSnapshot]
    ) -> None:
        for asset in assets:
            self.assets[asset.asset] = asset.scale
        for market in markets:
            self.markets[market.symbol] = market
        for snapshot in depth:
            self._depth[snapshot.symbol] = snapshot

    def reload(
        self, assets: Iterable[AssetView], markets: Iterable[MarketView], depth: Iterable[DepthSnapshot]
    ) -> None:
        """Replace everything after the engine rebuilt its core; cached tickers go stale."""
        self.load(assets, markets, depth)
        for symbol in self.markets:
            self._trade_versions[symbol] = self._trade_versions.get(symbol, 0) + 1

    def on_commit(self, batch: CommittedBatch) -> None:
        changes = batch.changes
        for asset in changes.assets:
            self.assets[asset.asset] = asset.scale
        for market in changes.markets:
            self.markets[market.symbol] = market
            if market.symbol not in self._depth:
                self._depth[market.symbol] = DepthSnapshot(market.symbol, changes.last_seq, [], [])
        self._depth.update(batch.depth)
        for trade in changes.trades:
            self._trade_versions[trade.symbol] = self._trade_versions.get(trade.symbol, 0) + 1

    def depth(self, symbol: str) -> DepthSnapshot:
        snapshot = self._depth.get(symbol)
        return snapshot if snapshot is not None else DepthSnapshot(symbol, 0, [], [])

    def trade_version(self, symbol: str) -> int:
        """Changes whenever a trade prints on ``symbol``: cached tickers key on it."""
        return self._trade_versions.get(symbol, 0)
