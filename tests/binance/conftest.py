"""The live ccxt test's fixtures: one ``cambist serve --demo`` per module (SQLite, demo
liquidity on BTC-USDT, ETH-USDT and ETH-BTC), a funded user with a read+trade API key, and
the real ccxt clients configured as binance-compat.md §4 says."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import ccxt.async_support as ccxt_async
import pytest
import pytest_asyncio

from e2e.support import ServerProcess

from .ccxt_support import (
    Live,
    RequestCounts,
    http_requests,
    provision,
    rest_client,
    start_server,
    wait_for_liquidity,
)

NATIVE_SYMBOLS = ("BTC-USDT", "ETH-USDT", "ETH-BTC")


def pytest_configure(config: pytest.Config) -> None:
    # pyproject's marker list is not ours to edit; registered here so --strict-markers would pass.
    config.addinivalue_line("markers", "binance: the Binance facade against the real ccxt client")


@pytest.fixture(scope="module")
def binance_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("binance-ccxt"))
    try:
        yield server
    finally:
        server.kill()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(binance_server: ServerProcess) -> Live:
    live = await provision(binance_server)
    await wait_for_liquidity(live.base_url, NATIVE_SYMBOLS)
    return live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def requests_before(live: Live) -> RequestCounts:
    """The server's request counter before ccxt sent anything (the surface check's baseline)."""
    return await http_requests(live.base_url)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ex(live: Live, requests_before: RequestCounts) -> AsyncIterator[ccxt_async.binance]:
    """The REST client every REST test shares, as a bot would use one."""
    client = rest_client(live)
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture(loop_scope="module")
async def fresh_client(live: Live) -> AsyncIterator[Callable[..., ccxt_async.binance]]:
    """``fresh_client(**config overrides)``: a new REST client, closed at the end of the test."""
    made: list[ccxt_async.binance] = []

    def make(**overrides: Any) -> ccxt_async.binance:
        client = rest_client(live, **overrides)
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.close()
