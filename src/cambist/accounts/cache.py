"""A small thread-safe LRU with optional expiry, for hot-path lookups (sessions, API keys)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlLru(Generic[K, V]):
    """At most ``max_entries`` values; a value older than ``ttl_ms`` is treated as absent.

    ``ttl_ms=None`` keeps values until evicted (for immutable data such as decrypted secrets).
    """

    def __init__(self, max_entries: int, ttl_ms: int | None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max_entries = max_entries
        self._ttl_ms = ttl_ms
        self._items: OrderedDict[K, tuple[int, V]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K, now_ms: int) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            stored_at, value = item
            if self._ttl_ms is not None and now_ms - stored_at >= self._ttl_ms:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V, now_ms: int) -> None:
        with self._lock:
            self._items[key] = (now_ms, value)
            self._items.move_to_end(key)
            while len(self._items) > self._max_entries:
                self._items.popitem(last=False)

    def discard(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
