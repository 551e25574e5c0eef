"""Races the gateway's worker threads can create, settled by the database on each backend."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine

from cambist.accounts.api_keys import API_KEYS_PER_USER_MAX
from cambist.accounts.errors import AuthError, LimitExceeded, RefreshTokenReused
from cambist.accounts.service import AccountService

from .support import FakeClock, make_engine, make_service

THREADS = 8


@pytest.fixture
def backend_service(db_url: str, clock: FakeClock) -> Iterator[AccountService]:
    engine: Engine = make_engine(db_url)
    yield make_service(engine, clock)
    engine.dispose()


def _race(action: Callable[[], object]) -> list[object]:
    """Run ``action`` in several threads at once; return each result or raised AuthError."""
    barrier = threading.Barrier(THREADS)
    results: list[object] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            outcome: object = action()
        except AuthError as error:
            outcome = error
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == THREADS, "a thread died of an error that is not an AuthError"
    return results


def test_concurrent_refresh_with_one_token(backend_service: AccountService) -> None:
    service = backend_service
    service.register("alice@example.com", "correct horse battery")
    pair = service.login("alice@example.com", "correct horse battery")
    results = _race(lambda: service.refresh(pair.refresh_token))
    errors = [r for r in results if isinstance(r, AuthError)]
    # At most one refresh wins; every other attempt is refused, and reuse ends the session.
    assert len(results) - len(errors) <= 1
    assert any(isinstance(e, RefreshTokenReused) for e in errors)
    assert service.list_sessions(1) == []


def test_concurrent_key_creation_respects_the_limit(backend_service: AccountService) -> None:
    service = backend_service
    user_id = service.register("alice@example.com", "correct horse battery")
    for i in range(API_KEYS_PER_USER_MAX - 2):
        service.create_api_key(user_id, f"k{i}", ["read"])
    results = _race(lambda: service.create_api_key(user_id, "racer", ["read"]))
    assert sum(not isinstance(r, AuthError) for r in results) == 2
    assert all(isinstance(r, LimitExceeded) for r in results if isinstance(r, AuthError))
    assert len(service.list_api_keys(user_id)) == API_KEYS_PER_USER_MAX
