"""The main flows once more on each backend (SQLite and PostgreSQL, via the suite's ``db_url``):
the ids start at 1, the conditional updates that settle races behave the same, keys decrypt."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from cambist.accounts.errors import EmailTaken, LimitExceeded, RefreshTokenReused, Unauthorized
from cambist.accounts.service import AccountService
from cambist.accounts.signing import sign

from .support import FakeClock, make_engine, make_service


@pytest.fixture
def backend_service(db_url: str, clock: FakeClock) -> Iterator[AccountService]:
    engine: Engine = make_engine(db_url)
    yield make_service(engine, clock)
    engine.dispose()


def test_flows_on_each_backend(backend_service: AccountService, clock: FakeClock) -> None:
    service = backend_service
    assert service.register("alice@example.com", "correct horse battery") == 1
    with pytest.raises(EmailTaken):
        service.register("ALICE@example.com", "correct horse battery")

    pair = service.login("alice@example.com", "correct horse battery")
    rotated = service.refresh(pair.refresh_token)
    with pytest.raises(RefreshTokenReused):
        service.refresh(pair.refresh_token)
    with pytest.raises(Unauthorized):
        service.authenticate_access_token(rotated.access_token)

    key_id, secret, _ = service.create_api_key(1, "bot", ["read"], ["10.0.0.0/8"])
    timestamp = str(clock.now_ms)
    principal = service.authenticate_signed_request(
        key_id,
        timestamp,
        sign(secret, timestamp, "GET", "/api/v1/x?a=1", b""),
        "GET",
        "/api/v1/x?a=1",
        b"",
        None,
        "10.1.1.1",
    )
    assert principal.user_id == 1
    for i in range(19):
        service.create_api_key(1, f"k{i}", ["read"])
    with pytest.raises(LimitExceeded):
        service.create_api_key(1, "too many", ["read"])
