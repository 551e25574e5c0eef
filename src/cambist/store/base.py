"""Database connection and the declarative base every model module shares.

One ``Database`` wraps a synchronous SQLAlchemy engine for either backend: SQLite (WAL, the
embedded default) or PostgreSQL (psycopg 3). Callers in async code run its work in a thread.
Amounts are BigInteger columns holding integer units (see ``cambist.core.numbers``): both
backends store them exactly as signed 64-bit integers.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_db_engine(
    url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 8, pre_ping: bool = True
) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            _enable_wal(cursor)
            # FULL: a committed batch survives power loss, not only a process crash.
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # pre_ping costs a round trip (SELECT 1) at every checkout; the engine's writer can skip it:
    # a dead connection fails the commit, and a failed commit already rebuilds from the store.
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=pre_ping)


def _enable_wal(cursor: Any, attempts: int = 50) -> None:
    """Switch the file to WAL (persistent, so usually already done). Switching needs a lock
    and SQLite answers "database is locked" at once, without its busy handler, when several
    processes open a new file together: retry briefly."""
    for attempt in range(attempts):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
