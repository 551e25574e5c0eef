"""Fixtures shared by the whole suite.

Databases:

- ``sqlite_url`` -- ``sqlite:///<tmp_path>/cambist.db``, a file that does not exist yet.
- ``postgres_url`` (session) -- one fresh PostgreSQL database for the whole session, dropped at the end.
- ``fresh_postgres_url`` -- a factory: each call creates another empty database and returns its
  URL; all of them are dropped at session end.
- ``db_url`` -- parametrized ``sqlite`` / ``postgres``: a fresh empty database of each backend, so
  a contract test written once runs against both. The postgres case carries the ``postgres`` mark
  (``-m "not postgres"`` deselects it).

PostgreSQL is reached at ``postgresql://postgres@127.0.0.1:5432/postgres`` or ``CAMBIST_TEST_PG_URL``.
When it is unreachable the tests that need it are skipped with the reason, except under ``CI=true``
where they fail: CI must not pass by skipping the backend it is there to test.

Redis: ``redis_url`` (session) -- the URL of a reachable Redis, ``redis://127.0.0.1:6379/0`` or
``CAMBIST_TEST_REDIS_URL``, checked once per session with a PING. It is shared and not flushed:
tests keep to their own random key prefix. Unreachable: skipped, or failed under ``CI=true``.

``settings`` gives validated ``Settings`` for a temporary data dir and SQLite database.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from psycopg import sql

from cambist.config import Settings, load_settings

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_CONNECT_TIMEOUT_S = 2
PG_CONNECT_TIMEOUT_S = 5
TEST_DB_PREFIX = "cambist_test_"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


class PostgresAdmin:
    """Creates and drops uniquely named test databases through the server's maintenance database."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT_S)

    def url_for(self, name: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path="/" + name))

    def create(self) -> str:
        name = f"{TEST_DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return self.url_for(name)

    def drop(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))

    def drop_created(self) -> None:
        while self.created:
            self.drop(self.created.pop())

    def drop_orphans(self) -> None:
        """Drop test databases left by earlier runs whose process is gone (killed, crashed)."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (TEST_DB_PREFIX + "%",)
            ).fetchall()
        for (name,) in rows:
            match = re.fullmatch(rf"{TEST_DB_PREFIX}(\d+)_[0-9a-f]+", str(name))
            if match and not _process_alive(int(match.group(1))):
                self.drop(str(name))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def _postgres_admin() -> Iterator[PostgresAdmin]:
    admin_url = os.environ.get("CAMBIST_TEST_PG_URL") or DEFAULT_PG_URL
    admin = PostgresAdmin(admin_url)
    try:
        with admin.connect() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        message = f"PostgreSQL not reachable at {admin_url}: {reason}"
        if _in_ci():
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)
    # Process ids only mean something on this machine: leave a shared remote server alone.
    if (urlsplit(admin_url).hostname or "localhost") in ("127.0.0.1", "localhost", "::1"):
        with contextlib.suppress(psycopg.Error):  # another run's leftovers are not this run's failure
            admin.drop_orphans()
    yield admin
    admin.drop_created()


@pytest.fixture(scope="session")
def postgres_url(_postgres_admin: PostgresAdmin) -> str:
    """One fresh database for the session (dropped with the others at session end)."""
    return _postgres_admin.create()


@pytest.fixture
def fresh_postgres_url(_postgres_admin: PostgresAdmin) -> Callable[[], str]:
    """Factory: each call creates a new empty database and returns its URL."""
    return _postgres_admin.create


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis (``CAMBIST_TEST_REDIS_URL`` or the local default); see the module doc."""
    url = os.environ.get("CAMBIST_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    client = redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S, socket_timeout=REDIS_CONNECT_TIMEOUT_S
    )
    try:
        client.ping()
    except redis.RedisError as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        message = f"Redis not reachable at {_without_password(url)}: {reason}"
        if _in_ci():
            pytest.fail(message + " (CI=true: Redis tests must run)", pytrace=False)
        pytest.skip(message)
    finally:
        client.close()
    return url


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cambist.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/cambist.db"
    factory: Callable[[], str] = request.getfixturevalue("fresh_postgres_url")
    return factory()


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    """Validated settings for a temporary data dir and SQLite database (no environment read)."""
    return load_settings(
        {
            "CAMBIST_DATA_DIR": str(tmp_path),
            "CAMBIST_DATABASE_URL": sqlite_url,
            "CAMBIST_SECRET_KEY": "test-secret-key-" + "0" * 32,
        }
    )
