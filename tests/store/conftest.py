"""Store contract fixtures: every test here runs once on SQLite and once on PostgreSQL.

``db_url`` (tests/conftest.py) gives a fresh empty database per backend; ``store_url`` migrates
it to head the way the application does at start.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from cambist.store.base import create_db_engine
from cambist.store.migrate import upgrade
from cambist.store.queries import TradingQueries
from cambist.store.trading import TradingStore


@pytest.fixture
def store_url(db_url: str) -> str:
    upgrade(db_url)
    return db_url


@pytest.fixture
def store_engine(store_url: str) -> Iterator[Engine]:
    engine = create_db_engine(store_url)
    yield engine
    engine.dispose()  # PostgreSQL cannot drop a database with open connections


@pytest.fixture
def store(store_engine: Engine) -> TradingStore:
    return TradingStore(store_engine)


@pytest.fixture
def queries(store_engine: Engine) -> TradingQueries:
    return TradingQueries(store_engine)
