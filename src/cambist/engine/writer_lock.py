"""One engine per database, enforced: a second writer would fork the ledger.

PostgreSQL: a session advisory lock held on a dedicated connection for the engine's life (the
server drops it when the process dies, so a killed engine never blocks its successor).
SQLite: an exclusive ``flock`` on a file beside the database, likewise released by the kernel.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from cambist.store.base import is_sqlite

ADVISORY_LOCK_KEY = 0x63616D62697374  # "cambist"


class WriterLockTaken(RuntimeError):
    """Another engine holds this database."""


class WriterLock:
    def __init__(self, db: Engine) -> None:
        self._db = db
        self._connection: Any = None
        self._file: int | None = None

    def acquire(self) -> None:
        if is_sqlite(self._db):
            self._acquire_file()
        else:
            self._acquire_advisory()

    def release(self) -> None:
        if self._connection is not None:
            # Closing a pooled connection only returns it to the pool, lock and all: unlock,
            # and take the connection out of the pool whatever happens.
            with contextlib.suppress(Exception):
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                self._connection.commit()
            with contextlib.suppress(Exception):
                self._connection.invalidate()
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def _acquire_advisory(self) -> None:
        connection = self._db.connect()
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
        ).scalar()
        connection.commit()
        if not got:
            connection.close()
            raise WriterLockTaken("another engine is running on this database (advisory lock held)")
        self._connection = connection

    def _acquire_file(self) -> None:
        import fcntl

        database = self._db.url.database
        if not database or database == ":memory:":
            return  # a private in-memory database has no second writer
        path = Path(database + ".engine-lock")
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise WriterLockTaken(f"another engine is running on {database} ({path} is locked)") from None
        self._file = descriptor
