"""Binance listenKeys: a 64-character token naming one user's data stream for 60 minutes,
kept alive by ``PUT /api/v3/userDataStream`` and closed by ``DELETE``.

``ListenKeys`` is the port; ``MemoryListenKeys`` serves one process (embedded) and
``RedisListenKeys`` a set of gateways, where a key made on one gateway is used on another.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Protocol

import redis

LISTEN_KEY_TTL_MS = 60 * 60 * 1000
LISTEN_KEYS_PER_USER_MAX = 20  # Binance reuses one key per API key; we cap what one user holds
MEMORY_KEYS_MAX = 100_000


class ListenKeys(Protocol):
    def create(self, user_id: int) -> str:
        """A new key for ``user_id`` (Binance answers POST with the live key if one exists;
        a fresh one is as good for every client and simpler to reason about)."""
        ...

    def keepalive(self, key: str) -> int | None:
        """Extend ``key`` by the full lifetime; the owner's user id, or None if unknown."""
        ...

    def owner(self, key: str) -> int | None:
        """The user a live ``key`` belongs to."""
        ...

    def close(self, key: str) -> int | None:
        """Forget ``key``; the owner's user id, or None if it was unknown."""
        ...


def new_key() -> str:
    return secrets.token_hex(32)  # 64 characters, like Binance's


class MemoryListenKeys:
    def __init__(self) -> None:
        self._keys: dict[str, tuple[int, int]] = {}  # key -> (user_id, expires_at_ms)
        self._lock = threading.Lock()

    @staticmethod
    def _now() -> int:
        return time.time_ns() // 1_000_000

    def create(self, user_id: int) -> str:
        now = self._now()
        with self._lock:
            self._expire(now)
            mine = sorted((exp, k) for k, (uid, exp) in self._keys.items() if uid == user_id)
            for _, oldest in mine[: max(0, len(mine) - LISTEN_KEYS_PER_USER_MAX + 1)]:
                del self._keys[oldest]
            if len(self._keys) >= MEMORY_KEYS_MAX:
                soonest = min(self._keys, key=lambda k: self._keys[k][1])
                del self._keys[soonest]
            key = new_key()
            self._keys[key] = (user_id, now + LISTEN_KEY_TTL_MS)
            return key

    def keepalive(self, key: str) -> int | None:
        now = self._now()
        with self._lock:
            found = self._live(key, now)
            if found is None:
                return None
            self._keys[key] = (found, now + LISTEN_KEY_TTL_MS)
            return found

    def owner(self, key: str) -> int | None:
        with self._lock:
            return self._live(key, self._now())

    def close(self, key: str) -> int | None:
        with self._lock:
            found = self._live(key, self._now())
            self._keys.pop(key, None)
            return found

    def _live(self, key: str, now: int) -> int | None:
        entry = self._keys.get(key)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def _expire(self, now: int) -> None:
        for key in [k for k, (_, exp) in self._keys.items() if exp <= now]:
            del self._keys[key]


class RedisListenKeys:
    """``<namespace>:listenkey:<key>`` = user id, with the key's lifetime as the Redis TTL."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._redis = client
        self._prefix = f"{namespace}:listenkey:"

    @classmethod
    def from_url(cls, url: str, namespace: str) -> RedisListenKeys:
        return cls(redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0), namespace)

    def create(self, user_id: int) -> str:
        key = new_key()
        self._redis.set(self._prefix + key, str(user_id), px=LISTEN_KEY_TTL_MS)
        return key

    def keepalive(self, key: str) -> int | None:
        name = self._prefix + key
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(name)
        pipe.pexpire(name, LISTEN_KEY_TTL_MS)
        value, _ = pipe.execute()
        return int(value) if value is not None else None

    def owner(self, key: str) -> int | None:
        value = self._redis.get(self._prefix + key)
        return int(value) if value is not None else None  # type: ignore[arg-type]

    def close(self, key: str) -> int | None:
        value = self._redis.getdel(self._prefix + key)
        return int(value) if value is not None else None  # type: ignore[arg-type]

    def close_client(self) -> None:
        self._redis.close()
