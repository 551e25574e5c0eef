"""Fixtures of the accounts tests (helpers live in ``support``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from cambist.accounts.service import AccountService

from .support import FakeClock, make_engine, make_service


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'accounts.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def service(engine: Engine, clock: FakeClock) -> AccountService:
    return make_service(engine, clock)
