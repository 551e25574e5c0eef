"""The ``cambist`` command: serve, engine, gateway, migrate, admin, verify."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from cambist.config import ConfigError, Settings, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        click.echo(f"cambist: invalid configuration: {error}", err=True)
        sys.exit(2)


def _prepare_data_dir(settings: Settings) -> None:
    if settings.is_sqlite:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group()
@click.version_option(package_name="cambist")
def main() -> None:
    """Cambist, an open-source cryptocurrency exchange backend."""


def _serve_options(function: Any) -> Any:
    function = click.option(
        "--port", type=int, default=None, help="Port to listen on (default CAMBIST_PORT or 8000)."
    )(function)
    return click.option(
        "--host", default=None, help="Address to listen on (default CAMBIST_HOST or 127.0.0.1)."
    )(function)


def _apply_options(host: str | None, port: int | None, demo: bool | None = None) -> Settings:
    if port is not None:
        os.environ["CAMBIST_PORT"] = str(port)
    if host is not None:
        os.environ["CAMBIST_HOST"] = host
    if demo is not None:
        os.environ["CAMBIST_DEMO"] = "true" if demo else "false"
    settings = _settings()  # validate before the server starts, with one clear line
    _prepare_data_dir(settings)
    _configure_logging(settings)
    return settings


def _run_granian(target: str, settings: Settings, workers: int = 1) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    Granian(
        target,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        loop=Loops.uvloop if sys.platform != "win32" else Loops.asyncio,
        log_access=False,
    ).serve()


@main.command()
@_serve_options
@click.option("--demo/--no-demo", default=None, help="Run demo liquidity on the default markets.")
def serve(host: str | None, port: int | None, demo: bool | None) -> None:
    """Run the embedded exchange: engine and API in one process."""
    settings = _apply_options(host, port, demo)
    click.echo(
        f"cambist: serving on http://{settings.host}:{settings.port} (docs at /docs), "
        f"store {_redact(settings.database_url)}, demo {'on' if settings.demo else 'off'}",
        err=True,
    )
    # One worker: the embedded engine is the single writer and lives in this process.
    _run_granian("cambist.api.app:create_app_from_env", settings)


@main.command()
@_serve_options
@click.option("--demo/--no-demo", default=None, help="Run demo liquidity on the default markets.")
def engine(host: str | None, port: int | None, demo: bool | None) -> None:
    """Run the engine alone (distributed mode): commands in and events out over Redis.

    HTTP on CAMBIST_PORT serves only /health, /ready and /metrics.
    """
    settings = _apply_options(host, port, demo)
    _require(settings, redis=True, role="engine")
    click.echo(
        f"cambist: engine with store {_redact(settings.database_url)}, redis "
        f"{_redact(settings.redis_url or '')} namespace {settings.redis_namespace}, "
        f"probes and metrics on http://{settings.host}:{settings.port}",
        err=True,
    )
    _run_granian("cambist.api.engine_app:create_engine_app_from_env", settings)


@main.command()
@_serve_options
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Processes.")
def gateway(host: str | None, port: int | None, workers: int) -> None:
    """Run an API gateway (distributed mode): REST and WebSocket, the engine reached over Redis."""
    settings = _apply_options(host, port)
    _require(settings, redis=True, role="gateway")
    click.echo(
        f"cambist: gateway on http://{settings.host}:{settings.port}, store "
        f"{_redact(settings.database_url)}, redis {_redact(settings.redis_url or '')} "
        f"namespace {settings.redis_namespace}",
        err=True,
    )
    _run_granian("cambist.api.app:create_gateway_app_from_env", settings, workers)


def _require(settings: Settings, *, redis: bool, role: str) -> None:
    """A role started without a server it needs says which, and exits non-zero."""
    if redis and not settings.redis_url:
        click.echo(f"cambist: the {role} needs CAMBIST_REDIS_URL (redis://host:6379/0)", err=True)
        sys.exit(2)
    if settings.is_sqlite:
        # Several processes on one SQLite file work, but the point of the split is a server
        # database that gateways on other machines reach.
        click.echo(
            f"cambist: warning: the {role} runs on SQLite; use PostgreSQL (CAMBIST_DATABASE_URL) "
            "when processes run on different machines",
            err=True,
        )


@main.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    _prepare_data_dir(settings)
    from cambist.store import migrate as migrations

    migrations.upgrade(settings.database_url)
    click.echo(f"cambist: schema at {migrations.current_revision(settings.database_url)}")


@main.group()
def admin() -> None:
    """Operator commands."""


@admin.command("create-user")
@click.option("--email", required=True)
@click.option("--password", required=True, help="At least 8 characters.")
@click.option(
    "--role", "roles", multiple=True, type=click.Choice(["user", "support", "admin"]), default=["user"]
)
def create_user(email: str, password: str, roles: tuple[str, ...]) -> None:
    """Create a user (or reset its password and roles)."""
    settings = _settings()
    _prepare_data_dir(settings)
    from cambist.accounts.errors import AuthError
    from cambist.accounts.service import AccountService
    from cambist.store import migrate as migrations
    from cambist.store.base import create_db_engine

    migrations.upgrade(settings.database_url)
    engine = create_db_engine(settings.database_url)
    service = AccountService(
        engine, settings.secret_key, settings.access_token_ttl_s, settings.refresh_token_ttl_s
    )
    all_roles = sorted({"user", *roles})
    try:
        user_id = service.create_user(email, password, all_roles)
    except AuthError as error:
        click.echo(f"cambist: {error.message}", err=True)
        sys.exit(1)
    finally:
        engine.dispose()
    click.echo(f"user {user_id} {email.lower()} roles {','.join(all_roles)}")


@main.command()
def verify() -> None:
    """Replay the whole journal into a fresh core and compare with the stored state."""
    settings = _settings()
    from cambist.core.checks import check_invariants
    from cambist.engine.recovery import recover_core, replay_journal
    from cambist.store.base import create_db_engine
    from cambist.store.trading import TradingStore

    engine = create_db_engine(settings.database_url)
    store = TradingStore(engine)
    recovered = recover_core(store).core
    replayed = replay_journal(store)
    check_invariants(replayed)
    engine.dispose()
    if replayed.state_hash() != recovered.state_hash():
        click.echo(
            f"MISMATCH: journal replay {replayed.state_hash()} != stored state {recovered.state_hash()}",
            err=True,
        )
        sys.exit(1)
    click.echo(f"ok: seq {recovered.last_seq}, state hash {recovered.state_hash()}")


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


if __name__ == "__main__":
    main()
