"""Fixtures of the API acceptance tests (helpers live in ``support``).

The app runs in-process through ``litestar.testing.AsyncTestClient`` with its lifespan
(migrations, engine recovery, the default markets), on SQLite in a temporary directory.

``client`` is one app per test module: starting an app costs a few hundred ms and tests
isolate themselves by using their own users. A test that needs an app of its own (other
settings, global changes such as halting a market) uses ``make_client`` with the
function-scoped ``settings`` of ``tests/conftest.py``.

Password hashing in these apps uses the cheap argon2 parameters that
``cambist.accounts.passwords`` provides for tests: every test registers and logs in its own
users over HTTP, which at production cost (~0.4 s per hash) would make the suite minutes long.
The hashing itself is covered by ``tests/accounts``.

Modules declare ``pytestmark = pytest.mark.asyncio(loop_scope="module")`` so that tests and
the module-scoped fixtures share one event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient
from litestar.testing.transport import TestClientTransport

from cambist.accounts.passwords import fast_passwords_for_tests
from cambist.api.app import create_app
from cambist.config import Settings, load_settings

from .support import API, PASSWORD, ApiKey, User, create_api_key, credit, login, new_email, new_user

ADMIN_EMAIL = "admin@example.com"


def settings_for(data_dir: Path) -> Settings:
    """What tests/conftest.py's ``settings`` gives, for a directory of any scope."""
    return load_settings(
        {
            "CAMBIST_DATA_DIR": str(data_dir),
            "CAMBIST_DATABASE_URL": f"sqlite:///{data_dir}/cambist.db",
            "CAMBIST_SECRET_KEY": "test-secret-key-" + "0" * 32,
        }
    )


CLIENT_ADDRESS = ("127.0.0.1", 50000)


def _from_loopback(client: AsyncTestClient[Any]) -> None:
    """Litestar's test transport reports the peer as the host name "testclient"; a real server
    gives an IP. Make requests come from 127.0.0.1 so IP allowlists see what production sees."""
    transport = client._transport  # the TestClientTransport the client was built with
    assert isinstance(transport, TestClientTransport)
    parse_request = transport.parse_request

    def parse(request: Any) -> dict[str, Any]:
        scope: dict[str, Any] = parse_request(request)
        scope["client"] = CLIENT_ADDRESS
        return scope

    transport.parse_request = parse  # type: ignore[method-assign]


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(settings, demo=False)) as client:
        accounts = client.app.state.runtime.accounts
        assert hasattr(accounts, "_passwords"), "AccountService changed: update the cheap-hashing hook"
        accounts._passwords = fast_passwords_for_tests()
        _from_loopback(client)
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncTestClient[Any]]:
    async with running_app(settings_for(tmp_path_factory.mktemp("api"))) as client:
        yield client


@pytest.fixture
def make_client(settings: Settings) -> Callable[..., Any]:
    """``async with make_client(signature_window_ms=...) as client:`` -- a private app."""

    def make(**changes: Any) -> Any:
        import dataclasses

        return running_app(dataclasses.replace(settings, **changes))

    return make


async def make_admin(client: AsyncTestClient[Any], email: str = ADMIN_EMAIL) -> User:
    runtime = client.app.state.runtime
    user_id = runtime.accounts.create_user(email, PASSWORD, ["user", "admin"])
    tokens = await login(client, email)
    return User(user_id, email, PASSWORD, tokens["accessToken"], tokens["refreshToken"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(client: AsyncTestClient[Any]) -> User:
    return await make_admin(client, new_email("admin"))


FundedUser = Callable[..., Awaitable[User]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def funded_user(client: AsyncTestClient[Any], admin: User) -> FundedUser:
    """``await funded_user(USDT="10000", BTC="1")``: a new user (HTTP register + login) credited
    through ``POST /api/v1/admin/credits``."""

    async def make(**amounts: str) -> User:
        user = await new_user(client)
        for asset, amount in amounts.items():
            response = await credit(client, admin, user.user_id, asset, amount)
            assert response.status_code == 201, response.text
        return user

    return make


MakeKey = Callable[..., Awaitable[ApiKey]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api_key(client: AsyncTestClient[Any]) -> MakeKey:
    """``await api_key(user, ["read", "trade"], ipAllowlist=[...])``: a key and its signer."""

    async def make(user: User, permissions: list[str], **extra: Any) -> ApiKey:
        return await create_api_key(client, user, permissions, **extra)

    return make


NewMarket = Callable[..., Awaitable[str]]
_market_numbers = iter(range(1, 10_000))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def new_market(client: AsyncTestClient[Any], admin: User) -> NewMarket:
    """``await new_market()``: a fresh ``Tn-USDT`` market (base scale 8) created through the
    admin API, shaped like BTC-USDT unless told otherwise. A test trading on its own market
    cannot be disturbed by orders other tests of the module left on a shared book."""

    async def make(**fields: str) -> str:
        base = f"T{next(_market_numbers)}"
        response = await client.post(
            f"{API}/admin/assets", json={"asset": base, "scale": 8}, headers=admin.headers
        )
        assert response.status_code == 201, response.text
        body = {
            "symbol": f"{base}-USDT",
            "baseAsset": base,
            "quoteAsset": "USDT",
            "tickSize": "0.01",
            "lotSize": "0.0001",
            "minQuantity": "0.0001",
            "minNotional": "5",
            "makerFee": "0.001",
            "takerFee": "0.001",
            **fields,
        }
        response = await client.post(f"{API}/admin/markets", json=body, headers=admin.headers)
        assert response.status_code == 201, response.text
        return f"{base}-USDT"

    return make
