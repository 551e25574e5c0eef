"""Alembic environment, configured from code (``cambist.store.migrate``); no alembic.ini.

``migrate.upgrade`` hands over an open connection inside its transaction (and lock) through
``config.attributes["connection"]``. Run from the ``alembic`` command line instead, the URL
comes from ``sqlalchemy.url`` or ``CAMBIST_DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from cambist.store import models_accounts, models_trading  # noqa: F401  (register the tables)
from cambist.store.base import Base, create_db_engine

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CAMBIST_DATABASE_URL")
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy.url or CAMBIST_DATABASE_URL")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_db_engine(_database_url())
    try:
        with engine.connect() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
