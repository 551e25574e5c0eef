"""The Binance facade behind two gateways: ccxt trades through gateway A while ccxt.pro on
gateway B sees the order on its user stream and keeps an exact order book; a listenKey made on
one gateway works on the other (listenKeys live in Redis)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from binance.ccxt_support import Live, ccxt_config, provision, wait_for_liquidity

from .support import Cluster

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240), pytest.mark.asyncio(loop_scope="module")]

BTC = "BTC/USDT"


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, _postgres_admin: Any, redis_url: str
) -> Iterator[Cluster]:
    running = Cluster(
        tmp_path_factory.mktemp("binance-cluster"),
        _postgres_admin.create(),
        redis_url,
        gateways=2,
        engine_options=("--demo",),  # the demo market maker runs in the engine process
    )
    try:
        running.start()
        yield running
    except BaseException:
        print(running.logs())
        raise
    finally:
        running.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lives(cluster: Cluster) -> tuple[Live, Live]:
    on_a = await provision(cluster.gateways[0])
    await wait_for_liquidity(on_a.base_url, ("BTC-USDT",))
    return on_a, replace(on_a, server=cluster.gateways[1])  # the same user and key on gateway B


@pytest_asyncio.fixture(loop_scope="module")
async def rest_a(lives: tuple[Live, Live]) -> AsyncIterator[Any]:
    exchange = ccxt_async.binance(ccxt_config(lives[0]))
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


async def far_bid(live: Live) -> float:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=10) as client:
        book = (await client.get("/api/v1/orderbook/BTC-USDT", params={"depth": 1})).json()
    bid = Decimal(book["bids"][0][0]) * Decimal("0.8")
    return float(bid.quantize(Decimal("0.01"), rounding=ROUND_DOWN))


async def test_an_order_through_gateway_a_reaches_the_user_stream_of_gateway_b(
    lives: tuple[Live, Live], rest_a: Any
) -> None:
    pro_b = ccxt_pro.binance(ccxt_config(lives[1]))
    try:
        await pro_b.load_markets()
        watching = asyncio.create_task(pro_b.watch_orders(BTC))
        await asyncio.sleep(1.0)  # subscribed on B before the order is placed on A
        order = await rest_a.create_order(BTC, "limit", "buy", 0.001, await far_bid(lives[0]))
        async with asyncio.timeout(20):
            while True:
                seen = await watching
                if any(o["id"] == order["id"] for o in seen):
                    break
                watching = asyncio.create_task(pro_b.watch_orders(BTC))
        mine = next(o for o in seen if o["id"] == order["id"])
        assert mine["status"] == "open" and mine["side"] == "buy"
        await rest_a.cancel_order(order["id"], BTC)
    finally:
        await pro_b.close()


async def test_the_order_book_on_gateway_b_stays_exact_while_the_engine_trades(
    lives: tuple[Live, Live],
) -> None:
    pro_b = ccxt_pro.binance(ccxt_config(lives[1]))
    try:
        await pro_b.load_markets()
        updates = 0
        async with asyncio.timeout(40):
            while updates < 5:  # ccxt raises ChecksumError on a gap in the update ids
                book = await pro_b.watch_order_book(BTC)
                updates += 1
        assert book["bids"] and book["asks"] and book["bids"][0][0] < book["asks"][0][0]
    finally:
        await pro_b.close()


async def test_a_listen_key_made_on_gateway_a_streams_on_gateway_b(
    lives: tuple[Live, Live], rest_a: Any
) -> None:
    async with httpx.AsyncClient(base_url=lives[0].base_url, timeout=10) as client:
        response = await client.post("/api/v3/userDataStream", headers={"X-MBX-APIKEY": lives[0].api_key})
        assert response.status_code == 200, response.text
        listen_key = response.json()["listenKey"]
    ws_b = lives[1].ws_url + f"/ws/{listen_key}"
    async with connect(ws_b) as socket:
        await asyncio.sleep(0.5)
        order = await rest_a.create_order(BTC, "limit", "buy", 0.001, await far_bid(lives[0]))
        async with asyncio.timeout(20):
            while True:
                event = json.loads(await socket.recv())
                if event.get("e") == "executionReport" and str(event.get("i")) == order["id"]:
                    break
        assert event["X"] == "NEW" and event["s"] == "BTCUSDT"
        await rest_a.cancel_order(order["id"], BTC)
