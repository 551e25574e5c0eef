from __future__ import annotations

import threading

from cambist.accounts.cache import TtlLru
from cambist.accounts.replay import MemoryReplayGuard, ReplayGuard


def test_first_seen_then_refused_until_expiry() -> None:
    guard: ReplayGuard = MemoryReplayGuard()
    assert guard.first_seen("k:sig", 1_000, now_ms=0)
    assert not guard.first_seen("k:sig", 1_000, now_ms=999)
    assert guard.first_seen("k:sig", 1_000, now_ms=1_000)  # forgotten once expired
    assert guard.first_seen("k:other", 1_000, now_ms=1_000)


def test_bounded_expired_entries_go_first() -> None:
    guard = MemoryReplayGuard(max_entries=3)
    guard.first_seen("a", 100, now_ms=0)
    guard.first_seen("b", 10_000, now_ms=0)
    guard.first_seen("c", 10_000, now_ms=0)
    guard.first_seen("d", 10_000, now_ms=200)  # "a" has expired and makes room
    assert len(guard) == 3
    assert not guard.first_seen("b", 10_000, now_ms=300)
    assert not guard.first_seen("c", 10_000, now_ms=300)


def test_bounded_when_full_the_soonest_to_expire_goes() -> None:
    guard = MemoryReplayGuard(max_entries=2)
    guard.first_seen("long", 50_000, now_ms=0)
    guard.first_seen("short", 5_000, now_ms=0)
    guard.first_seen("new", 50_000, now_ms=1)
    assert len(guard) == 2
    assert not guard.first_seen("long", 50_000, now_ms=2)
    assert not guard.first_seen("new", 50_000, now_ms=2)


def test_many_keys_stay_bounded() -> None:
    guard = MemoryReplayGuard(max_entries=100)
    for i in range(1_000):
        assert guard.first_seen(f"k{i}", 60_000, now_ms=i)
    assert len(guard) == 100


def test_concurrent_first_seen_admits_exactly_one() -> None:
    guard = MemoryReplayGuard()
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def attempt() -> None:
        barrier.wait()
        results.append(guard.first_seen("same", 60_000, now_ms=0))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_ttl_lru_expiry_and_bound() -> None:
    cache: TtlLru[str, int] = TtlLru(max_entries=2, ttl_ms=100)
    cache.put("a", 1, now_ms=0)
    assert cache.get("a", now_ms=99) == 1
    assert cache.get("a", now_ms=100) is None
    cache.put("a", 1, now_ms=200)
    cache.put("b", 2, now_ms=200)
    cache.get("a", now_ms=201)  # "a" becomes the most recently used
    cache.put("c", 3, now_ms=202)
    assert cache.get("b", now_ms=203) is None
    assert cache.get("a", now_ms=203) == 1
    cache.discard("a")
    assert cache.get("a", now_ms=203) is None


def test_ttl_lru_without_ttl_keeps_values() -> None:
    cache: TtlLru[str, int] = TtlLru(max_entries=2, ttl_ms=None)
    cache.put("a", 1, now_ms=0)
    assert cache.get("a", now_ms=10**12) == 1
