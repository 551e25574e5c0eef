"""Binance symbols (``BTCUSDT``) and Cambist markets (``BTC-USDT``).

A Binance symbol is the base and quote assets written together. Two markets could collide
(``AB-CD`` and ``ABC-D``); the first in symbol order keeps the name and the other is not
reachable through this facade, which is logged once, rather than answering for the wrong one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from cambist.core.events import MarketView

log = logging.getLogger(__name__)


def binance_symbol(market: MarketView) -> str:
    return market.base_asset + market.quote_asset


class SymbolMap:
    """Rebuilt whenever the set of markets changes (they change rarely; lookups are hot)."""

    def __init__(self) -> None:
        self._key: tuple[str, ...] = ()
        self._to_market: dict[str, str] = {}
        self._to_binance: dict[str, str] = {}

    def refresh(self, markets: Mapping[str, MarketView]) -> None:
        key = tuple(sorted(markets))
        if key == self._key:
            return
        to_market: dict[str, str] = {}
        to_binance: dict[str, str] = {}
        for symbol in key:
            name = binance_symbol(markets[symbol])
            if name in to_market:
                log.warning("markets %s and %s share the Binance symbol %s", to_market[name], symbol, name)
                continue
            to_market[name] = symbol
            to_binance[symbol] = name
        self._key, self._to_market, self._to_binance = key, to_market, to_binance

    def market(self, binance: str) -> str | None:
        """``BTCUSDT`` → ``BTC-USDT`` (Binance symbols are upper case; so are ours)."""
        return self._to_market.get(binance)

    def binance(self, symbol: str) -> str:
        return self._to_binance[symbol]

    def all(self) -> dict[str, str]:
        """Binance symbol → market symbol."""
        return dict(self._to_market)
