"""Helpers of the accounts tests: a settable clock, engines with only the accounts tables, and
an ``AccountService`` with cheap argon2 parameters."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from cambist.accounts.passwords import fast_passwords_for_tests
from cambist.accounts.service import AccountService
from cambist.store import models_accounts
from cambist.store.base import Base, create_db_engine

SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"
START_MS = 1_700_000_000_000
ACCESS_TTL_S = 900
REFRESH_TTL_S = 7 * 24 * 3600

ACCOUNT_TABLES = [
    models_accounts.User.__table__,
    models_accounts.UserSession.__table__,
    models_accounts.RefreshToken.__table__,
    models_accounts.ApiKey.__table__,
]


class FakeClock:
    """Milliseconds that only move when a test says so."""

    def __init__(self, now_ms: int = START_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


def make_engine(url: str) -> Engine:
    engine = create_db_engine(url)
    # Only our tables: other modules' models may share the metadata.
    Base.metadata.create_all(engine, tables=ACCOUNT_TABLES)  # type: ignore[arg-type]
    return engine


def make_service(engine: Engine, clock: FakeClock, **kwargs: object) -> AccountService:
    return AccountService(
        engine,
        SECRET_KEY,
        access_ttl_s=ACCESS_TTL_S,
        refresh_ttl_s=REFRESH_TTL_S,
        clock=clock,
        passwords=fast_passwords_for_tests(),
        **kwargs,  # type: ignore[arg-type]
    )
