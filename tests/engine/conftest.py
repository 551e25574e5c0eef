"""Engine fixtures: every test runs once on SQLite and once on PostgreSQL (``db_url``).

``store_url`` is the ``db_url`` database migrated to head; ``engines`` opens engines on it
(optionally over a wrapped store) and, at teardown, stops them and disposes their connections
so PostgreSQL can drop the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cambist.store.migrate import upgrade

from .support import EngineFactory


@pytest.fixture
def store_url(db_url: str) -> str:
    upgrade(db_url)
    return db_url


@pytest.fixture
async def engines(store_url: str) -> AsyncIterator[EngineFactory]:
    factory = EngineFactory(store_url)
    try:
        yield factory
    finally:
        await factory.close()
