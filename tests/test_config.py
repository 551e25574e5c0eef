from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import pytest

from cambist.config import ConfigError, Settings, load_settings

KEY = "k" * 32


def load(tmp_path: Path, **variables: str) -> Settings:
    environ = {"CAMBIST_DATA_DIR": str(tmp_path), "CAMBIST_SECRET_KEY": KEY}
    environ.update(variables)
    return load_settings(environ)


def error_of(tmp_path: Path, **variables: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **variables)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.data_dir == tmp_path / "data"
    assert settings.data_dir.is_absolute()
    assert settings.database_url == f"sqlite:///{tmp_path}/data/cambist.db"
    assert settings.is_sqlite
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.access_token_ttl_s == 900
    assert settings.refresh_token_ttl_s == 30 * 86_400
    assert settings.signature_window_ms == 5000
    assert settings.engine_batch_max == 256
    assert settings.engine_inbox_max == 10_000
    assert settings.sqlite_synchronous == "FULL"
    assert settings.demo is False
    assert settings.log_level == "INFO"
    assert settings.trusted_proxies == ()
    assert settings.redis_url is None
    assert settings.amqp_url is None
    assert len(settings.secret_key) == 64


def test_reads_os_environ_when_not_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CAMBIST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CAMBIST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAMBIST_PORT", "9001")
    assert load_settings().port == 9001


def test_every_variable_parsed(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        CAMBIST_DATABASE_URL="postgresql://cambist:pw@db:5432/cambist",
        CAMBIST_HOST="0.0.0.0",
        CAMBIST_PORT="8080",
        CAMBIST_ACCESS_TOKEN_TTL_S="60",
        CAMBIST_REFRESH_TOKEN_TTL_S="3600",
        CAMBIST_SIGNATURE_WINDOW_MS="60000",
        CAMBIST_ENGINE_BATCH_MAX="10000",
        CAMBIST_ENGINE_INBOX_MAX="20000",
        CAMBIST_SQLITE_SYNCHRONOUS="normal",
        CAMBIST_DEMO="yes",
        CAMBIST_LOG_LEVEL="debug",
        CAMBIST_TRUSTED_PROXIES="10.0.0.0/8, 192.168.1.7 ,::1,",
        CAMBIST_REDIS_URL="redis://redis:6379/0",
        CAMBIST_AMQP_URL="amqp://guest:guest@rabbit:5672/",
    )
    assert settings.database_url == "postgresql://cambist:pw@db:5432/cambist"
    assert not settings.is_sqlite
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert (settings.access_token_ttl_s, settings.refresh_token_ttl_s) == (60, 3600)
    assert settings.signature_window_ms == 60000
    assert (settings.engine_batch_max, settings.engine_inbox_max) == (10000, 20000)
    assert settings.sqlite_synchronous == "NORMAL"
    assert settings.demo is True
    assert settings.log_level == "DEBUG"
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.is_trusted_proxy("10.1.2.3")
    assert settings.is_trusted_proxy("::1")
    assert not settings.is_trusted_proxy("192.168.1.8")
    assert not settings.is_trusted_proxy("not-an-ip")
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.amqp_url == "amqp://guest:guest@rabbit:5672/"
    assert settings.secret_key == KEY


@pytest.mark.parametrize(
    "url", ["sqlite:///x.db", "postgresql://h/d", "postgres://h/d", "postgresql+psycopg://h/d"]
)
def test_database_url_schemes_accepted(tmp_path: Path, url: str) -> None:
    settings = load(tmp_path, CAMBIST_DATABASE_URL=url)
    assert settings.database_url == url
    assert settings.is_sqlite == url.startswith("sqlite")


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("TRUE", True), ("No", False), ("0", False)])
def test_demo_boolean_spellings(tmp_path: Path, raw: str, expected: bool) -> None:
    assert load(tmp_path, CAMBIST_DEMO=raw).demo is expected


def test_empty_value_means_unset(tmp_path: Path) -> None:
    settings = load(tmp_path, CAMBIST_PORT="", CAMBIST_REDIS_URL="  ")
    assert settings.port == 8000
    assert settings.redis_url is None


def test_secret_key_hidden_from_repr(tmp_path: Path) -> None:
    assert KEY not in repr(load(tmp_path))


def test_settings_frozen(tmp_path: Path) -> None:
    settings = load(tmp_path)
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"CAMBIST_PORT": "abc"},
            "CAMBIST_PORT must be an integer between 1 and 65535, got 'abc'",
        ),
        ({"CAMBIST_PORT": "0"}, "CAMBIST_PORT must be an integer between 1 and 65535, got '0'"),
        ({"CAMBIST_PORT": "65536"}, "CAMBIST_PORT must be an integer between 1 and 65535, got '65536'"),
        ({"CAMBIST_PORT": "-1"}, "CAMBIST_PORT must be an integer between 1 and 65535, got '-1'"),
        ({"CAMBIST_PORT": "8_000"}, "CAMBIST_PORT must be an integer between 1 and 65535, got '8_000'"),
        (
            {"CAMBIST_ACCESS_TOKEN_TTL_S": "0"},
            "CAMBIST_ACCESS_TOKEN_TTL_S must be an integer between 1 and 86400, got '0'",
        ),
        (
            {"CAMBIST_REFRESH_TOKEN_TTL_S": "1.5"},
            "CAMBIST_REFRESH_TOKEN_TTL_S must be an integer between 1 and 31536000, got '1.5'",
        ),
        (
            {"CAMBIST_ACCESS_TOKEN_TTL_S": "600", "CAMBIST_REFRESH_TOKEN_TTL_S": "300"},
            "CAMBIST_REFRESH_TOKEN_TTL_S must be at least CAMBIST_ACCESS_TOKEN_TTL_S (600), got 300",
        ),
        (
            {"CAMBIST_SIGNATURE_WINDOW_MS": "60001"},
            "CAMBIST_SIGNATURE_WINDOW_MS must be an integer between 1 and 60000, got '60001'",
        ),
        (
            {"CAMBIST_ENGINE_BATCH_MAX": "10001"},
            "CAMBIST_ENGINE_BATCH_MAX must be an integer between 1 and 10000, got '10001'",
        ),
        (
            {"CAMBIST_ENGINE_BATCH_MAX": "0"},
            "CAMBIST_ENGINE_BATCH_MAX must be an integer between 1 and 10000, got '0'",
        ),
        (
            {"CAMBIST_ENGINE_INBOX_MAX": "many"},
            "CAMBIST_ENGINE_INBOX_MAX must be an integer between 1 and 1000000, got 'many'",
        ),
        (
            {"CAMBIST_ENGINE_INBOX_MAX": "100"},
            "CAMBIST_ENGINE_INBOX_MAX must be at least CAMBIST_ENGINE_BATCH_MAX (256), got 100",
        ),
        (
            {"CAMBIST_SQLITE_SYNCHRONOUS": "OFF"},
            "CAMBIST_SQLITE_SYNCHRONOUS must be one of FULL, NORMAL, got 'OFF'",
        ),
        (
            {"CAMBIST_DEMO": "maybe"},
            "CAMBIST_DEMO must be one of 1, 0, true, false, yes, no, got 'maybe'",
        ),
        (
            {"CAMBIST_LOG_LEVEL": "TRACE"},
            "CAMBIST_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'TRACE'",
        ),
        (
            {"CAMBIST_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.300"},
            "CAMBIST_TRUSTED_PROXIES must be a comma-separated list of IP addresses or CIDR networks, "
            "got '10.0.0.300'",
        ),
        (
            {"CAMBIST_DATABASE_URL": "mysql://root:hunter2@db/cambist"},
            "CAMBIST_DATABASE_URL must start with sqlite://, postgresql://, postgres:// or "
            "postgresql+psycopg://, got 'mysql://root:***@db/cambist'",
        ),
        (
            {"CAMBIST_REDIS_URL": "localhost:6379"},
            "CAMBIST_REDIS_URL must start with redis://, rediss:// or unix://, got 'localhost:6379'",
        ),
        (
            {"CAMBIST_AMQP_URL": "http://guest:guest@rabbit/"},
            "CAMBIST_AMQP_URL must start with amqp:// or amqps://, got 'http://guest:***@rabbit/'",
        ),
        (
            {"CAMBIST_HOST": "local host"},
            "CAMBIST_HOST must be an IP address or host name, got 'local host'",
        ),
        (
            {"CAMBIST_SECRET_KEY": "short"},
            "CAMBIST_SECRET_KEY must be at least 32 characters, got 5 characters",
        ),
    ],
)
def test_validation_errors(tmp_path: Path, variables: dict[str, str], message: str) -> None:
    assert error_of(tmp_path, **variables) == message


def test_unknown_variable_named_with_suggestion(tmp_path: Path) -> None:
    message = error_of(tmp_path, CAMBIST_PROT="8000")
    assert message.startswith(
        "unknown environment variable CAMBIST_PROT (did you mean CAMBIST_PORT?); known: "
    )
    assert "CAMBIST_DATABASE_URL" in message


def test_several_unknown_variables_all_named(tmp_path: Path) -> None:
    message = error_of(tmp_path, CAMBIST_ZZZ="1", CAMBIST_DEMOO="1")
    assert message.startswith(
        "unknown environment variables CAMBIST_DEMOO (did you mean CAMBIST_DEMO?), CAMBIST_ZZZ;"
    )


def test_test_suite_and_foreign_variables_ignored(tmp_path: Path) -> None:
    settings = load(tmp_path, CAMBIST_TEST_PG_URL="postgresql://x/y", CAMBISTX="1", PATH="/bin")
    assert settings.port == 8000


def test_secret_key_file_created_then_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    environ = {"CAMBIST_DATA_DIR": str(data_dir)}
    first = load_settings(environ)
    path = data_dir / "secret.key"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.secret_key) == 64
    bytes.fromhex(first.secret_key)  # 32 random bytes, hex
    assert path.read_text().strip() == first.secret_key
    assert load_settings(environ).secret_key == first.secret_key


def test_secret_key_differs_between_data_dirs(tmp_path: Path) -> None:
    one = load_settings({"CAMBIST_DATA_DIR": str(tmp_path / "one")})
    two = load_settings({"CAMBIST_DATA_DIR": str(tmp_path / "two")})
    assert one.secret_key != two.secret_key


def test_given_secret_key_writes_no_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert load_settings({"CAMBIST_DATA_DIR": str(data_dir), "CAMBIST_SECRET_KEY": KEY}).secret_key == KEY
    assert not (data_dir / "secret.key").exists()


def test_existing_secret_key_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("a" * 40 + "\n")
    assert load_settings({"CAMBIST_DATA_DIR": str(tmp_path)}).secret_key == "a" * 40


def test_short_secret_key_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("abc\n")
    with pytest.raises(ConfigError) as info:
        load_settings({"CAMBIST_DATA_DIR": str(tmp_path)})
    assert str(info.value) == (
        f"CAMBIST_SECRET_KEY is unset and {path} holds 3 characters, expected at least 32: "
        "delete it to have a new key made"
    )


def test_data_dir_that_is_a_file_rejected(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as info:
        load_settings({"CAMBIST_DATA_DIR": str(blocker)})
    message = str(info.value)
    assert message.startswith(
        f"CAMBIST_SECRET_KEY is unset and {blocker}/secret.key cannot be read or created: "
    )
    assert "\n" not in message
