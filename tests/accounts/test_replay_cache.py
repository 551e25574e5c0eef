"""Replay guards. The contract tests run against every ``ReplayGuard``: the in-process one and
``RedisReplayGuard`` on a real Redis (``redis_url``: skipped when unreachable, failed under
CI=true), each Redis test under its own random namespace. Then what only one of them has: the
memory guard's bound and simulated clock; Redis's hashed keys, sharing and failing closed."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from typing import cast

import pytest
import redis
from sqlalchemy.engine import Engine

from cambist.accounts import signing
from cambist.accounts.cache import TtlLru
from cambist.accounts.errors import ReplayedRequest, ServiceUnavailable
from cambist.accounts.replay import MemoryReplayGuard, ReplayGuard
from cambist.accounts.replay_redis import RedisReplayGuard

from .support import FakeClock, make_service

UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def new_namespace() -> str:
    return f"cambist-test-{secrets.token_hex(8)}"


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A random key prefix on the test Redis; its keys are deleted afterwards."""
    name = new_namespace()
    yield name
    admin = redis.Redis.from_url(redis_url)
    try:
        for key in admin.scan_iter(match=f"{name}:*"):
            admin.delete(key)
    finally:
        admin.close()


@pytest.fixture
def redis_guard(redis_url: str, namespace: str) -> Iterator[RedisReplayGuard]:
    guard = RedisReplayGuard.from_url(redis_url, namespace=namespace)
    yield guard
    guard.close()


@pytest.fixture(params=["memory", "redis"])
def guard(request: pytest.FixtureRequest) -> ReplayGuard:
    if request.param == "memory":
        return MemoryReplayGuard()
    return cast(RedisReplayGuard, request.getfixturevalue("redis_guard"))


# -- the contract: every ReplayGuard --------------------------------------------------------


def test_first_seen_then_refused_while_remembered(guard: ReplayGuard) -> None:
    assert guard.first_seen("k:sig", 60_000, wall_ms())
    assert not guard.first_seen("k:sig", 60_000, wall_ms())
    assert not guard.first_seen("k:sig", 60_000, wall_ms())
    assert guard.first_seen("k:other", 60_000, wall_ms())
    assert guard.first_seen("K:sig", 60_000, wall_ms())  # keys are compared exactly


def test_forgotten_once_expired(guard: ReplayGuard) -> None:
    # Real time: Redis expires keys on its own clock, whatever ``now_ms`` says.
    started = time.monotonic()
    assert guard.first_seen("short", 50, wall_ms())
    while not guard.first_seen("short", 50, wall_ms()):
        assert time.monotonic() - started < 5, "never expired"
        time.sleep(0.01)
    assert time.monotonic() - started >= 0.045  # not before its time (a few ms of clock slack)


def test_ttl_below_one_ms_is_one_ms(guard: ReplayGuard) -> None:
    for ttl_ms in (0, -5):
        key = f"ttl{ttl_ms}"
        assert guard.first_seen(key, ttl_ms, wall_ms())
        time.sleep(0.01)
        assert guard.first_seen(key, ttl_ms, wall_ms())


def test_long_and_non_ascii_keys(guard: ReplayGuard) -> None:
    for key in ("k" * 100_000, "ключ:подпись", "a:" + "f" * 64):
        assert guard.first_seen(key, 60_000, wall_ms())
        assert not guard.first_seen(key, 60_000, wall_ms())


def test_concurrent_first_seen_admits_exactly_one(guard: ReplayGuard) -> None:
    threads_n = 16
    results: list[bool] = []
    barrier = threading.Barrier(threads_n)

    def attempt() -> None:
        barrier.wait()
        results.append(guard.first_seen("same", 60_000, wall_ms()))

    threads = [threading.Thread(target=attempt) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * (threads_n - 1) + [True]


# -- the memory guard: simulated clock, bounded ---------------------------------------------


def test_memory_first_seen_then_refused_until_expiry() -> None:
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


# -- the Redis guard: shared by replicas, hashed keys, fails closed ----------------------------


def test_redis_keys_are_namespaced_hashed_and_expire(
    redis_guard: RedisReplayGuard, namespace: str, redis_url: str
) -> None:
    key = "ak_live_0123:" + "ab" * 32
    assert redis_guard.first_seen(key, 60_000, wall_ms())
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        stored = list(admin.scan_iter(match=f"{namespace}:*"))
        expected = f"{namespace}:replay:{hashlib.sha256(key.encode()).hexdigest()}"
        assert stored == [expected] == [redis_guard.redis_key(key)]
        assert 0 < admin.pttl(expected) <= 60_000
        assert admin.get(expected) == "1"
    finally:
        admin.close()


def test_redis_guards_share_a_namespace_and_only_it(redis_url: str, namespace: str) -> None:
    first = RedisReplayGuard.from_url(redis_url, namespace=namespace)
    second = RedisReplayGuard.from_url(redis_url, namespace=namespace)  # another replica
    elsewhere = RedisReplayGuard.from_url(redis_url, namespace=namespace + "-other")
    try:
        assert first.first_seen("k:sig", 60_000, wall_ms())
        assert not second.first_seen("k:sig", 60_000, wall_ms())
        assert elsewhere.first_seen("k:sig", 60_000, wall_ms())
    finally:
        for guard in (first, second, elsewhere):
            guard.close()
        admin = redis.Redis.from_url(redis_url)
        for key in admin.scan_iter(match=f"{namespace}-other:*"):
            admin.delete(key)
        admin.close()


def test_a_request_replayed_to_another_gateway_is_refused(
    redis_url: str, namespace: str, engine: Engine, clock: FakeClock
) -> None:
    guards = [RedisReplayGuard.from_url(redis_url, namespace=namespace) for _ in range(2)]
    gateways = [make_service(engine, clock, replay_guard=guard) for guard in guards]
    user_id = gateways[0].register("bot@example.com", "correct horse battery")
    key_id, secret, _ = gateways[0].create_api_key(user_id, "bot", ["read"])
    timestamp = str(clock.now_ms)
    signature = signing.sign(secret, timestamp, "GET", "/api/v1/account", b"")
    request = (key_id, timestamp, signature, "GET", "/api/v1/account", b"", None, "203.0.113.7")
    assert gateways[0].authenticate_signed_request(*request).user_id == user_id
    with pytest.raises(ReplayedRequest):
        gateways[1].authenticate_signed_request(*request)
    for guard in guards:
        guard.close()


def test_unreachable_redis_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    guard = RedisReplayGuard.from_url(UNREACHABLE_REDIS_URL, namespace=new_namespace())
    key = "ak_secretish:" + "cd" * 32
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="cambist.accounts.replay_redis"):
        for _ in range(3):
            with pytest.raises(ServiceUnavailable) as caught:
                guard.first_seen(key, 60_000, wall_ms())
            assert (caught.value.status, caught.value.code) == (503, "SERVICE_UNAVAILABLE")
            assert isinstance(caught.value.__cause__, redis.RedisError)
    guard.close()
    assert time.monotonic() - started < 3  # no retry loop holds the worker thread
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage, not once per request
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert "cd" * 32 not in logged and "ak_secretish" not in logged
    assert hashlib.sha256(key.encode()).hexdigest() not in logged


def test_unreachable_redis_refuses_signed_requests_with_503(engine: Engine, clock: FakeClock) -> None:
    guard = RedisReplayGuard.from_url(UNREACHABLE_REDIS_URL, namespace=new_namespace())
    service = make_service(engine, clock, replay_guard=guard)
    user_id = service.register("bot@example.com", "correct horse battery")
    key_id, secret, _ = service.create_api_key(user_id, "bot", ["read"])
    timestamp = str(clock.now_ms)
    signature = signing.sign(secret, timestamp, "GET", "/api/v1/account", b"")
    with pytest.raises(ServiceUnavailable) as caught:
        service.authenticate_signed_request(
            key_id, timestamp, signature, "GET", "/api/v1/account", b"", None, "203.0.113.7"
        )
    assert caught.value.status == 503
    guard.close()


class _FlakyClient:
    """Stands in for ``redis.Redis``: fails while ``down``, else behaves like ``SET NX``."""

    def __init__(self) -> None:
        self.down = False
        self.keys: set[str] = set()

    def set(self, name: str, value: bytes, *, nx: bool, px: int) -> bool | None:
        assert nx and px >= 1
        if self.down:
            raise redis.ConnectionError("Error 111 connecting to redis:6379. Connection refused.")
        if name in self.keys:
            return None
        self.keys.add(name)
        return True


def test_outage_logged_once_and_recovery_noted(caplog: pytest.LogCaptureFixture) -> None:
    client = _FlakyClient()
    guard = RedisReplayGuard(cast(redis.Redis, client), namespace="ns")
    with caplog.at_level(logging.INFO, logger="cambist.accounts.replay_redis"):
        assert guard.first_seen("a", 1_000, 0)
        client.down = True
        for _ in range(3):
            with pytest.raises(ServiceUnavailable):
                guard.first_seen("b", 1_000, 0)
        client.down = False
        assert guard.first_seen("b", 1_000, 0)  # nothing was remembered while down
        assert not guard.first_seen("a", 1_000, 0)
        client.down = True
        with pytest.raises(ServiceUnavailable):
            guard.first_seen("c", 1_000, 0)
    levels = [r.levelname for r in caplog.records]
    assert levels == ["WARNING", "INFO", "WARNING"]


def test_redis_guard_validates_namespace() -> None:
    with pytest.raises(ValueError):
        RedisReplayGuard(cast(redis.Redis, _FlakyClient()), namespace="")


# -- TtlLru ----------------------------------------------------------------------------------


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
