"""Memory of recently seen signed requests, so a captured request cannot be sent again.

``ReplayGuard`` is the port; ``MemoryReplayGuard`` serves one process (embedded mode). With
several gateway replicas a shared implementation is needed, otherwise a request replayed to
another replica passes: ``cambist.accounts.replay_redis.RedisReplayGuard`` (Redis
``SET key 1 NX PX ttl`` answers exactly ``first_seen``; it fails closed with a 503).

An implementation may raise ``ServiceUnavailable`` when it cannot tell: never answer True then.
"""

from __future__ import annotations

import heapq
import threading
from typing import Protocol


class ReplayGuard(Protocol):
    def first_seen(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        """Remember ``key`` for ``ttl_ms``; True the first time, False while remembered.

        Raises ``ServiceUnavailable`` (503) when the answer cannot be known.
        """
        ...


class MemoryReplayGuard:
    """Bounded in-process guard, safe to call from several threads.

    When full, expired entries go first; if it is still full, the entries closest to expiry
    are dropped. That keeps memory bounded under a flood while opening the smallest possible
    gap: a dropped entry had the least time left in which it could be replayed.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max_entries = max_entries
        self._expiry_ms: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []  # (expires_at_ms, key), may hold stale pairs
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry_ms)

    def first_seen(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        with self._lock:
            self._drop_expired(now_ms)
            expires = self._expiry_ms.get(key)
            if expires is not None and expires > now_ms:
                return False
            while len(self._expiry_ms) >= self._max_entries:
                self._pop_soonest()
            expires_at = now_ms + max(ttl_ms, 1)
            self._expiry_ms[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            return True

    def _drop_expired(self, now_ms: int) -> None:
        while self._heap and self._heap[0][0] <= now_ms:
            self._pop_soonest()

    def _pop_soonest(self) -> None:
        expires_at, key = heapq.heappop(self._heap)
        # A stale heap pair (the key was re-added later with a new expiry) is just discarded.
        if self._expiry_ms.get(key) == expires_at:
            del self._expiry_ms[key]
