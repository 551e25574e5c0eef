"""Schema migrations, run from code: ``upgrade(url)`` on every start, ``current_revision(url)``.

The Alembic environment lives in the package (``cambist/store/migrations``), so an installed
Cambist needs no alembic.ini. ``upgrade`` is safe to call from several processes at once:
PostgreSQL serializes them on an advisory lock held for the migration's transaction, SQLite
on ``BEGIN IMMEDIATE``. Either way the whole upgrade is one transaction, DDL included, so a
failed migration leaves the schema as it was.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

from cambist.store.base import create_db_engine, is_sqlite, normalize_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed 64-bit key; it only has to differ from other advisory locks in the database.
_PG_MIGRATION_LOCK = 0x63616D6269737400  # "cambist\0"


def alembic_config(database_url: str, connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, for commands and tests."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolates '%', which URL-encoded passwords contain.
    config.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there."""
    engine = _migration_engine(database_url)
    try:
        with engine.begin() as connection:
            if not is_sqlite(engine):
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            command.upgrade(alembic_config(database_url, connection), revision)
    finally:
        engine.dispose()


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def is_current(database_url: str) -> bool:
    """The schema is at the newest revision this code knows."""
    return current_revision(database_url) == head_revision()


def _migration_engine(database_url: str) -> Engine:
    engine = create_db_engine(database_url, pool_size=1)
    if is_sqlite(engine):
        _make_sqlite_ddl_transactional(engine)
    return engine


def _make_sqlite_ddl_transactional(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, open transactions.

    The sqlite3 module only opens a transaction before DML, so CREATE TABLE would commit on
    its own. Emitting BEGIN IMMEDIATE ourselves keeps DDL inside the migration's transaction
    and takes the write lock up front, so concurrent upgrades wait instead of interleaving.
    """

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
