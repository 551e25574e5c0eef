"""One engine and two gateways as separate processes on the real PostgreSQL, Redis and RabbitMQ.

- An order placed through gateway A shows on WebSockets connected to gateway B, on the public
  channels (order book, trades) and the private ones (orders, fills, balances).
- A RabbitMQ consumer receives each trade under one message id, exported by the engine process.
- With the engine down, gateways answer 503 at once and stay up; the restarted engine is
  followed again, and a WebSocket that stayed connected keeps an exact order book.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from e2e.support import API, auth, cli, expect

from .support import Cluster

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

AMQP_URL = os.environ.get("CAMBIST_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
EXCHANGE = "cambist.events"
SYMBOL = "BTC-USDT"
PASSWORD = "cluster-test-password-1"
FRAME_TIMEOUT_S = 15.0


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _require_amqp() -> str:
    parts = urlsplit(AMQP_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=2).close()
    except OSError as error:
        reason = f"RabbitMQ not reachable at {parts.hostname}:{parts.port or 5672} ({error})"
        if _in_ci():
            pytest.fail(reason + "; CI=true requires it")
        pytest.skip(reason)
    return AMQP_URL


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, _postgres_admin: Any, redis_url: str
) -> Iterator[Cluster]:
    amqp_url = _require_amqp()
    running = Cluster(
        tmp_path_factory.mktemp("cluster"),
        _postgres_admin.create(),
        redis_url,
        gateways=2,
        extra_env={"CAMBIST_AMQP_URL": amqp_url},
    )
    try:
        running.start()
        yield running
    except BaseException:
        print(running.logs())
        raise
    finally:
        running.close()


# -- users ---------------------------------------------------------------------------------------


class User:
    def __init__(self, user_id: int, token: str) -> None:
        self.user_id = user_id
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.token)


async def new_user(client: httpx.AsyncClient) -> User:
    email = f"u-{secrets.token_hex(5)}@cluster.example.com"
    credentials = {"email": email, "password": PASSWORD}
    user_id = expect(await client.post(f"{API}/auth/register", json=credentials), 201)["userId"]
    token = expect(await client.post(f"{API}/auth/login", json=credentials), 200)["accessToken"]
    return User(user_id, token)


async def new_admin(cluster: Cluster, client: httpx.AsyncClient) -> User:
    email = f"admin-{secrets.token_hex(5)}@cluster.example.com"
    made = await asyncio.to_thread(
        cli, cluster.env, "admin", "create-user", "--email", email, "--password", PASSWORD, "--role", "admin"
    )
    assert made.returncode == 0, made.stderr
    body = expect(await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD}), 200)
    return User(int(made.stdout.split()[1]), body["accessToken"])


async def fund(client: httpx.AsyncClient, admin: User, user: User, asset: str, amount: str) -> None:
    body = {"userId": user.user_id, "asset": asset, "amount": amount, "reason": "cluster test"}
    expect(await client.post(f"{API}/admin/credits", json=body, headers=admin.headers), 201)


async def traders(cluster: Cluster, a: httpx.AsyncClient) -> tuple[User, User]:
    admin = await new_admin(cluster, a)
    seller, buyer = await new_user(a), await new_user(a)
    await fund(a, admin, seller, "BTC", "1")
    await fund(a, admin, buyer, "USDT", "100000")
    return seller, buyer


# -- WebSocket -----------------------------------------------------------------------------------


class Socket:
    """A WebSocket client that keeps every frame, so tests wait for one by a predicate."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def wait_for(self, predicate: Any, timeout_s: float = FRAME_TIMEOUT_S) -> dict[str, Any]:
        """The first frame received so far or from now on that matches ``predicate``."""
        async with asyncio.timeout(timeout_s):
            checked = 0
            while True:
                for frame in self.frames[checked:]:
                    if predicate(frame):
                        return frame
                checked = len(self.frames)
                self.frames.append(json.loads(await self.connection.recv()))

    async def drain(self, quiet_s: float = 0.3) -> None:
        """Read whatever arrives until the connection stays quiet for ``quiet_s``."""
        with contextlib.suppress(TimeoutError):
            while True:
                async with asyncio.timeout(quiet_s):
                    self.frames.append(json.loads(await self.connection.recv()))


@contextlib.asynccontextmanager
async def websocket(base_url: str) -> AsyncIterator[Socket]:
    async with connect(base_url.replace("http://", "ws://") + "/ws", max_size=2**22) as connection:
        yield Socket(connection)


def on(channel: str, kind: str | None = None, **fields: Any) -> Any:
    def matches(frame: dict[str, Any]) -> bool:
        if frame.get("channel") != channel or (kind is not None and frame.get("type") != kind):
            return False
        data = frame.get("data") or {}
        return all(data.get(key) == value for key, value in fields.items())

    return matches


class Book:
    """An order book kept from a snapshot and sequenced updates, as API.md tells clients to."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        data = snapshot["data"]
        self.sequence = data["sequence"]
        self.bids = {Decimal(p): Decimal(q) for p, q in data["bids"]}
        self.asks = {Decimal(p): Decimal(q) for p, q in data["asks"]}

    def apply(self, frame: dict[str, Any]) -> None:
        data = frame["data"]
        if frame["type"] == "snapshot":
            self.__init__(frame)  # type: ignore[misc]
            return
        assert data["prevSequence"] == self.sequence, f"gap: {self.sequence} -> {data}"
        self.sequence = data["sequence"]
        for side, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for price, quantity in levels:
                if Decimal(quantity) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = Decimal(quantity)


def book_of(socket: Socket) -> Book:
    frames = [f for f in socket.frames if f.get("channel") == f"orderbook:{SYMBOL}"]
    assert frames and frames[0]["type"] == "snapshot", frames[:1]
    book = Book(frames[0])
    for frame in frames[1:]:
        book.apply(frame)
    return book


async def rest_book(client: httpx.AsyncClient) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    body = expect(await client.get(f"{API}/orderbook/{SYMBOL}", params={"depth": 1000}), 200)
    bids = {Decimal(p): Decimal(q) for p, q in body["bids"]}
    asks = {Decimal(p): Decimal(q) for p, q in body["asks"]}
    return bids, asks


# -- RabbitMQ ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def trade_consumer() -> AsyncIterator[Any]:
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, f"trade.{SYMBOL}")
        yield queue


async def receive_until(queue: Any, wanted: set[str], timeout_s: float = 20.0) -> list[Any]:
    received: list[Any] = []
    async with asyncio.timeout(timeout_s):
        while not wanted <= {m.message_id for m in received}:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            received.append(message)
    # Anything else already on its way (a duplicate would be here by now).
    await asyncio.sleep(0.5)
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        received.append(message)
    return received


# -- tests ---------------------------------------------------------------------------------------


async def test_an_order_through_gateway_a_is_seen_on_gateway_b(cluster: Cluster) -> None:
    url_a, url_b = cluster.urls
    async with (
        httpx.AsyncClient(base_url=url_a, timeout=15) as a,
        httpx.AsyncClient(base_url=url_b, timeout=15) as b,
        trade_consumer() as queue,
    ):
        seller, buyer = await traders(cluster, a)
        async with websocket(url_b) as public, websocket(url_b) as private:
            await public.send({"op": "subscribe", "channels": [f"orderbook:{SYMBOL}", f"trades:{SYMBOL}"]})
            await public.wait_for(lambda f: f.get("type") == "subscribed")
            await public.wait_for(on(f"orderbook:{SYMBOL}", "snapshot"))
            await private.send({"op": "auth", "token": seller.token})
            await private.wait_for(lambda f: f.get("type") == "authenticated")
            await private.send({"op": "subscribe", "channels": ["orders", "fills", "balances"]})
            await private.wait_for(lambda f: f.get("type") == "subscribed")

            # The seller's order rests: B's book and B's private orders channel show it.
            price, quantity = "61234.56", "0.01"
            sell = {"symbol": SYMBOL, "side": "sell", "type": "limit", "price": price, "quantity": quantity}
            order = expect(await a.post(f"{API}/orders", json=sell, headers=seller.headers), 201)
            await private.wait_for(on("orders", orderId=order["orderId"], status="new"))
            await public.wait_for(
                lambda f: (
                    f.get("channel") == f"orderbook:{SYMBOL}"
                    and [price, quantity] in [[p, q] for p, q in f["data"]["asks"]]
                )
            )

            # The buyer takes it through A: B tells the trade, the fill and the balances.
            buy = dict(sell, side="buy")
            taken = expect(await a.post(f"{API}/orders", json=buy, headers=buyer.headers), 201)
            assert taken["status"] == "filled", taken
            trade_id = taken["fills"][0]["tradeId"]
            trade = await public.wait_for(on(f"trades:{SYMBOL}", tradeId=trade_id))
            assert (trade["data"]["price"], trade["data"]["quantity"]) == (price, quantity)
            await private.wait_for(on("fills", tradeId=trade_id))
            await private.wait_for(on("orders", orderId=order["orderId"], status="filled"))
            await private.wait_for(on("balances", asset="USDT"))
            await public.drain()
            book = book_of(public)
            assert (book.bids, book.asks) == await rest_book(b)
            # Nothing of the buyer's reaches the seller's socket.
            assert not any(f.get("data", {}).get("orderId") == taken["orderId"] for f in private.frames)

        # The engine exported the trade to RabbitMQ: one message id per trade, as REST says.
        messages = await receive_until(queue, {f"trade-{trade_id}"})
        ids = [m.message_id for m in messages]
        assert ids.count(f"trade-{trade_id}") >= 1
        bodies = {m.message_id: json.loads(m.body) for m in messages}
        assert bodies[f"trade-{trade_id}"]["tradeId"] == trade_id
        assert (bodies[f"trade-{trade_id}"]["price"], bodies[f"trade-{trade_id}"]["quantity"]) == (
            price,
            quantity,
        )
        # Every message of the same trade carries the same id: deduplicating by id is exact.
        for message in messages:
            body = json.loads(message.body)
            assert message.message_id == f"trade-{body['tradeId']}"


async def test_every_trade_reaches_the_consumer_under_one_id(cluster: Cluster) -> None:
    url_a, url_b = cluster.urls
    async with (
        httpx.AsyncClient(base_url=url_a, timeout=15) as a,
        httpx.AsyncClient(base_url=url_b, timeout=15) as b,
        trade_consumer() as queue,
    ):
        seller, buyer = await traders(cluster, a)
        trade_ids: list[int] = []
        for n in range(10):
            client = a if n % 2 else b  # both gateways feed the one engine
            price = f"{50000 + n:.2f}"
            sell = {"symbol": SYMBOL, "side": "sell", "type": "limit", "price": price, "quantity": "0.0010"}
            expect(await client.post(f"{API}/orders", json=sell, headers=seller.headers), 201)
            taken = expect(
                await client.post(f"{API}/orders", json=dict(sell, side="buy"), headers=buyer.headers), 201
            )
            trade_ids += [fill["tradeId"] for fill in taken["fills"]]
        assert len(trade_ids) == 10
        messages = await receive_until(queue, {f"trade-{t}" for t in trade_ids})
        mine = [m for m in messages if json.loads(m.body)["tradeId"] in trade_ids]
        by_trade: dict[int, set[str]] = {}
        for message in mine:
            by_trade.setdefault(json.loads(message.body)["tradeId"], set()).add(message.message_id)
        assert sorted(by_trade) == sorted(trade_ids)
        assert all(len(ids) == 1 for ids in by_trade.values()), by_trade


async def test_gateways_fail_fast_while_the_engine_is_down_and_follow_it_back(
    tmp_path: Path, fresh_postgres_url: Any, redis_url: str
) -> None:
    cluster = Cluster(tmp_path / "cluster", fresh_postgres_url(), redis_url, gateways=2)
    try:
        await asyncio.to_thread(cluster.start)
        url_a, url_b = cluster.urls
        async with (
            httpx.AsyncClient(base_url=url_a, timeout=15) as a,
            httpx.AsyncClient(base_url=url_b, timeout=15) as b,
        ):
            seller, buyer = await traders(cluster, a)
            sell = {
                "symbol": SYMBOL,
                "side": "sell",
                "type": "limit",
                "price": "55000.00",
                "quantity": "0.0010",
            }
            resting = expect(await a.post(f"{API}/orders", json=sell, headers=seller.headers), 201)
            async with websocket(url_b) as public:
                await public.send({"op": "subscribe", "channels": [f"orderbook:{SYMBOL}"]})
                await public.wait_for(on(f"orderbook:{SYMBOL}", "snapshot"))

                await asyncio.to_thread(cluster.engine.kill)
                # Within the heartbeat's lifetime both gateways know, and answer at once.
                await wait_until_status(a, "/ready", 503, timeout_s=10)
                await wait_until_status(b, "/ready", 503, timeout_s=10)
                for client in (a, b):
                    started = time.monotonic()
                    response = await client.post(f"{API}/orders", json=sell, headers=seller.headers)
                    assert response.status_code == 503, response.text
                    assert response.json()["code"] in ("ENGINE_UNAVAILABLE", "SERVICE_UNAVAILABLE"), (
                        response.text
                    )
                    assert time.monotonic() - started < 1.0, "a command waited on a dead engine"
                # Reads keep working from the store and the gateway's own state.
                assert (await rest_book(b))[1] == {Decimal("55000"): Decimal("0.001")}
                expect(await b.get(f"{API}/orders/{resting['orderId']}", headers=seller.headers), 200)

                await asyncio.to_thread(cluster.engine.start)
                await asyncio.to_thread(cluster.engine.wait_ready)
                await wait_until_status(a, "/ready", 200, timeout_s=15)
                await wait_until_status(b, "/ready", 200, timeout_s=15)
                taken = expect(
                    await b.post(f"{API}/orders", json=dict(sell, side="buy"), headers=buyer.headers), 201
                )
                assert taken["status"] == "filled"
                # The socket that stayed open through the restart still has the exact book.
                await public.wait_for(
                    lambda f: (
                        f.get("channel") == f"orderbook:{SYMBOL}"
                        and ["55000", "0"] in [[p, q] for p, q in f["data"]["asks"]]
                    )
                )
                await public.drain()
                book = book_of(public)
                assert (book.bids, book.asks) == await rest_book(b)
            # A new subscriber starts from a snapshot of the same book.
            async with websocket(url_a) as fresh:
                await fresh.send({"op": "subscribe", "channels": [f"orderbook:{SYMBOL}"]})
                snapshot = await fresh.wait_for(on(f"orderbook:{SYMBOL}", "snapshot"))
                assert (Book(snapshot).bids, Book(snapshot).asks) == await rest_book(a)
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.close()


async def wait_until_status(client: httpx.AsyncClient, path: str, status: int, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        response = await client.get(path)
        if response.status_code == status:
            return
        last = response
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} did not become {status} in {timeout_s} s: {last and last.text}")
