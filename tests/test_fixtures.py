"""The shared database fixtures give reachable, empty, distinct databases."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import create_engine, inspect, text

from cambist.config import Settings


def _sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.mark.postgres
def test_postgres_url_is_a_fresh_database(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")
    name = postgres_url.rsplit("/", 1)[1]
    assert name.startswith("cambist_test_")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)


@pytest.mark.postgres
def test_fresh_postgres_url_gives_distinct_databases(fresh_postgres_url: Callable[[], str]) -> None:
    first, second = fresh_postgres_url(), fresh_postgres_url()
    assert first != second
    for url in (first, second):
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_db_url_is_empty_and_writable(db_url: str) -> None:
    engine = create_engine(_sqlalchemy_url(db_url))
    try:
        assert inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY)"))
            conn.execute(text("INSERT INTO probe (id) VALUES (1)"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM probe")).scalar_one() == 1
    finally:
        engine.dispose()


def test_settings_fixture(settings: Settings) -> None:
    assert settings.is_sqlite
    assert settings.database_url.endswith("/cambist.db")
