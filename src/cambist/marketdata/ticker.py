"""A small cache of computed tickers."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

TICKER_TTL_MS = 1000  # the 24 h window slides by the minute; trades invalidate at once


class TickerCache(Generic[T]):
    """Tickers computed from the store, reused until a trade prints or a second passes."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, int, int, T]] = {}

    def get(self, symbol: str, version: int, depth_seq: int, now: int) -> T | None:
        entry = self._entries.get(symbol)
        if entry is None or entry[0] != version or entry[1] != depth_seq or now - entry[2] > TICKER_TTL_MS:
            return None
        return entry[3]

    def put(self, symbol: str, version: int, depth_seq: int, now: int, ticker: T) -> None:
        self._entries[symbol] = (version, depth_seq, now, ticker)
