"""Migrations: the packaged revisions build exactly the trading models, and rerunning is a no-op."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect

from cambist.store import models_trading
from cambist.store.base import Base, create_db_engine
from cambist.store.migrate import alembic_config, current_revision, upgrade

TRADING_TABLES = {
    "assets",
    "markets",
    "orders",
    "trades",
    "fills",
    "balances",
    "ledger_entries",
    "journal",
    "engine_state",
    "klines",
}


def test_models_declare_the_trading_tables() -> None:
    declared = {table.name for table in Base.metadata.tables.values() if table.name in TRADING_TABLES}
    assert declared == TRADING_TABLES
    assert models_trading.KLINE_INTERVALS_MS["1d"] == 86_400_000


def test_upgrade_reaches_head_and_a_second_run_is_a_no_op(db_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    assert current_revision(db_url) is None
    upgrade(db_url)
    assert current_revision(db_url) == head
    engine = create_db_engine(db_url)
    try:
        tables_before = set(inspect(engine).get_table_names())
        upgrade(db_url)
        assert set(inspect(engine).get_table_names()) == tables_before
    finally:
        engine.dispose()
    assert current_revision(db_url) == head
    assert tables_before >= TRADING_TABLES


def test_migrated_schema_matches_the_trading_models(db_url: str) -> None:
    upgrade(db_url)
    engine = create_db_engine(db_url)

    def trading_only(name: str | None, type_: str, _parent: Any) -> bool:
        return type_ != "table" or name in TRADING_TABLES

    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_name": trading_only}
            )
            assert compare_metadata(context, _trading_metadata()) == []
    finally:
        engine.dispose()


def _trading_metadata() -> MetaData:
    """The trading tables alone: other modules' tables arrive in their own revisions."""
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for name in TRADING_TABLES:
        Base.metadata.tables[name].to_metadata(metadata)
    return metadata


def test_every_amount_column_is_a_64_bit_integer(db_url: str) -> None:
    upgrade(db_url)
    engine = create_db_engine(db_url)
    try:
        inspector = inspect(engine)
        for table in ("orders", "trades", "fills", "balances", "ledger_entries", "klines"):
            types = {c["name"]: str(c["type"]).upper() for c in inspector.get_columns(table)}
            for name in ("price", "quantity", "available", "delta", "volume", "quote_volume", "fee"):
                if name in types:
                    assert types[name] == "BIGINT", (table, name, types[name])
    finally:
        engine.dispose()


def test_concurrent_upgrades_serialize(db_url: str) -> None:
    """Several processes starting at once (gateway replicas) must not race the same DDL."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(upgrade, db_url) for _ in range(3)]:
            future.result()
    head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    assert current_revision(db_url) == head
