"""Settings, read once at start from ``CAMBIST_*`` environment variables and validated then.

``load_settings()`` returns a frozen ``Settings`` or raises ``ConfigError`` whose message is one
line naming the variable, what it expects and what it got, so a bad deployment fails at start
with an obvious cause rather than later with an odd one. An unknown ``CAMBIST_*`` variable is an
error too: a typo such as ``CAMBIST_PROT`` would otherwise be silently ignored. Variables under
``CAMBIST_TEST_`` belong to the test suite and are not read here. An empty value means unset.

To add a setting: add the field to ``Settings``, its variable to ``_VARIABLES``, a line in
``load_settings`` and a row in the README's configuration table.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

__all__ = ["ConfigError", "Settings", "load_settings"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SqliteSynchronous = Literal["FULL", "NORMAL"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

PREFIX = "CAMBIST_"
TEST_PREFIX = "CAMBIST_TEST_"
SECRET_KEY_FILE = "secret.key"
SECRET_KEY_CHARS_MIN = 32
DATABASE_URL_PREFIXES = ("sqlite://", "postgresql://", "postgres://", "postgresql+psycopg://")
REDIS_URL_PREFIXES = ("redis://", "rediss://", "unix://")
AMQP_URL_PREFIXES = ("amqp://", "amqps://")
NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

DAY_S = 86_400
_VARIABLES = (
    "CAMBIST_DATA_DIR",
    "CAMBIST_DATABASE_URL",
    "CAMBIST_HOST",
    "CAMBIST_PORT",
    "CAMBIST_SECRET_KEY",
    "CAMBIST_ACCESS_TOKEN_TTL_S",
    "CAMBIST_REFRESH_TOKEN_TTL_S",
    "CAMBIST_SIGNATURE_WINDOW_MS",
    "CAMBIST_ENGINE_BATCH_MAX",
    "CAMBIST_ENGINE_INBOX_MAX",
    "CAMBIST_SQLITE_SYNCHRONOUS",
    "CAMBIST_DEMO",
    "CAMBIST_LOG_LEVEL",
    "CAMBIST_TRUSTED_PROXIES",
    "CAMBIST_REDIS_URL",
    "CAMBIST_AMQP_URL",
    "CAMBIST_REDIS_NAMESPACE",
    "CAMBIST_COMMAND_TIMEOUT_MS",
)


class ConfigError(ValueError):
    """A setting is missing, malformed or out of range. The message is one line for the operator."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    data_dir: Path
    database_url: str
    # Signs JWTs and encrypts API-key secrets: kept out of repr so it never reaches a log line.
    secret_key: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8000
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * DAY_S
    signature_window_ms: int = 5000
    engine_batch_max: int = 256
    engine_inbox_max: int = 10_000
    sqlite_synchronous: SqliteSynchronous = "FULL"
    demo: bool = False
    log_level: LogLevel = "INFO"
    trusted_proxies: tuple[IPNetwork, ...] = ()
    redis_url: str | None = None
    amqp_url: str | None = None
    # Prefix of every Redis key and channel, so deployments can share one Redis server.
    redis_namespace: str = "cambist"
    # How long a command may wait for the engine in distributed mode before it is refused.
    command_timeout_ms: int = 5000

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def is_trusted_proxy(self, address: str) -> bool:
        """True when ``address`` (a peer IP) lies in one of ``trusted_proxies``."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings from ``environ`` (default ``os.environ``)."""
    env = _Env(os.environ if environ is None else environ)
    env.reject_unknown()

    data_dir = Path(env.get("CAMBIST_DATA_DIR") or "./data").expanduser().absolute()
    database_url = env.get("CAMBIST_DATABASE_URL") or f"sqlite:///{data_dir / 'cambist.db'}"
    if not database_url.startswith(DATABASE_URL_PREFIXES):
        raise ConfigError(
            f"CAMBIST_DATABASE_URL must start with {_alternatives(DATABASE_URL_PREFIXES)}, "
            f"got {_redact_url(database_url)!r}"
        )

    access_token_ttl_s = env.integer("CAMBIST_ACCESS_TOKEN_TTL_S", 900, 1, DAY_S)
    refresh_token_ttl_s = env.integer("CAMBIST_REFRESH_TOKEN_TTL_S", 30 * DAY_S, 1, 365 * DAY_S)
    if refresh_token_ttl_s < access_token_ttl_s:
        raise ConfigError(
            f"CAMBIST_REFRESH_TOKEN_TTL_S must be at least CAMBIST_ACCESS_TOKEN_TTL_S "
            f"({access_token_ttl_s}), got {refresh_token_ttl_s}"
        )
    engine_batch_max = env.integer("CAMBIST_ENGINE_BATCH_MAX", 256, 1, 10_000)
    engine_inbox_max = env.integer("CAMBIST_ENGINE_INBOX_MAX", 10_000, 1, 1_000_000)
    if engine_inbox_max < engine_batch_max:
        raise ConfigError(
            f"CAMBIST_ENGINE_INBOX_MAX must be at least CAMBIST_ENGINE_BATCH_MAX "
            f"({engine_batch_max}), got {engine_inbox_max}"
        )

    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=_secret_key(env.get("CAMBIST_SECRET_KEY"), data_dir),
        host=_host(env.get("CAMBIST_HOST") or "127.0.0.1"),
        port=env.integer("CAMBIST_PORT", 8000, 1, 65_535),
        access_token_ttl_s=access_token_ttl_s,
        refresh_token_ttl_s=refresh_token_ttl_s,
        signature_window_ms=env.integer("CAMBIST_SIGNATURE_WINDOW_MS", 5000, 1, 60_000),
        engine_batch_max=engine_batch_max,
        engine_inbox_max=engine_inbox_max,
        sqlite_synchronous=cast(
            SqliteSynchronous, env.choice("CAMBIST_SQLITE_SYNCHRONOUS", "FULL", ("FULL", "NORMAL"))
        ),
        demo=env.boolean("CAMBIST_DEMO", False),
        log_level=cast(
            LogLevel, env.choice("CAMBIST_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
        ),
        trusted_proxies=_networks(env.get("CAMBIST_TRUSTED_PROXIES")),
        redis_url=env.url("CAMBIST_REDIS_URL", REDIS_URL_PREFIXES),
        amqp_url=env.url("CAMBIST_AMQP_URL", AMQP_URL_PREFIXES),
        redis_namespace=_namespace(env.get("CAMBIST_REDIS_NAMESPACE") or "cambist"),
        command_timeout_ms=env.integer("CAMBIST_COMMAND_TIMEOUT_MS", 5000, 100, 60_000),
    )


class _Env:
    """Typed reads of ``CAMBIST_*`` variables; every failure is a one-line ``ConfigError``."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def reject_unknown(self) -> None:
        unknown = sorted(
            name
            for name in self._environ
            if name.startswith(PREFIX) and not name.startswith(TEST_PREFIX) and name not in _VARIABLES
        )
        if not unknown:
            return
        described = []
        for name in unknown:
            # Compare without the shared prefix, or every name would look close to every other.
            close = difflib.get_close_matches(
                name[len(PREFIX) :], [v[len(PREFIX) :] for v in _VARIABLES], n=1
            )
            described.append(f"{name} (did you mean {PREFIX}{close[0]}?)" if close else name)
        raise ConfigError(
            f"unknown environment variable{'s' if len(unknown) > 1 else ''} {', '.join(described)}; "
            f"known: {', '.join(_VARIABLES)}"
        )

    def get(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get(name)
        if raw is None:
            return default
        # Only ASCII digits: int() would also take "1_000", "+5" and non-ASCII digits.
        if not re.fullmatch(r"[0-9]{1,18}", raw) or not low <= int(raw) <= high:
            raise ConfigError(f"{name} must be an integer between {low} and {high}, got {raw!r}")
        return int(raw)

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.get(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes"):
            return True
        if lowered in ("0", "false", "no"):
            return False
        raise ConfigError(f"{name} must be one of 1, 0, true, false, yes, no, got {raw!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.get(name)
        if raw is None:
            return default
        if raw.upper() not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return raw.upper()

    def url(self, name: str, prefixes: tuple[str, ...]) -> str | None:
        raw = self.get(name)
        if raw is not None and not raw.startswith(prefixes):
            raise ConfigError(f"{name} must start with {_alternatives(prefixes)}, got {_redact_url(raw)!r}")
        return raw


def _namespace(raw: str) -> str:
    if not NAMESPACE_RE.fullmatch(raw):
        raise ConfigError(
            f"CAMBIST_REDIS_NAMESPACE must be 1-64 letters, digits, '-', '_' or '.', got {raw!r}"
        )
    return raw


def _host(raw: str) -> str:
    if any(char.isspace() for char in raw) or "/" in raw:
        raise ConfigError(f"CAMBIST_HOST must be an IP address or host name, got {raw!r}")
    return raw


def _networks(raw: str | None) -> tuple[IPNetwork, ...]:
    if raw is None:
        return ()
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"CAMBIST_TRUSTED_PROXIES must be a comma-separated list of IP addresses or CIDR "
                f"networks, got {item!r}"
            ) from None
    return tuple(networks)


def _secret_key(given: str | None, data_dir: Path) -> str:
    if given is not None:
        if len(given) < SECRET_KEY_CHARS_MIN:
            raise ConfigError(
                f"CAMBIST_SECRET_KEY must be at least {SECRET_KEY_CHARS_MIN} characters, "
                f"got {len(given)} characters"
            )
        return given
    path = data_dir / SECRET_KEY_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        _create_secret_key_file(path)
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"CAMBIST_SECRET_KEY is unset and {path} cannot be read or created: {error}"
        ) from None
    if len(key) < SECRET_KEY_CHARS_MIN:
        raise ConfigError(
            f"CAMBIST_SECRET_KEY is unset and {path} holds {len(key)} characters, "
            f"expected at least {SECRET_KEY_CHARS_MIN}: delete it to have a new key made"
        )
    return key


def _create_secret_key_file(path: Path) -> None:
    """Write 32 random bytes as hex to ``path`` (mode 0600) unless it already exists."""
    try:
        # O_EXCL: two processes starting at once must not each write a different key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(secrets.token_hex(32) + "\n")


def _alternatives(options: tuple[str, ...]) -> str:
    return ", ".join(options[:-1]) + " or " + options[-1]


def _redact_url(url: str) -> str:
    """Hide a password in ``scheme://user:password@host`` so an error message can be logged."""
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)
