"""Trades exported to a real RabbitMQ (127.0.0.1:5672 or CAMBIST_TEST_AMQP_URL): skipped when
unreachable, a failure under CI=true."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest

from api.conftest import make_admin, running_app
from api.support import credit, new_email, new_user, placed
from cambist.bus.export import EXCHANGE
from cambist.config import Settings

AMQP_URL = os.environ.get("CAMBIST_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
UNREACHABLE_AMQP_URL = "amqp://guest:guest@127.0.0.1:1/"  # nothing listens on port 1


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture
def amqp_url() -> str:
    parts = urlsplit(AMQP_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=2).close()
    except OSError as error:
        reason = f"RabbitMQ not reachable at {parts.hostname}:{parts.port or 5672} ({error})"
        if _in_ci():
            pytest.fail(reason + "; CI=true requires it")
        pytest.skip(reason)
    return AMQP_URL


class Consumer:
    """A temporary exclusive queue bound to ``cambist.events``."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    async def receive(self, wanted: set[str], timeout_s: float = 15.0) -> list[Any]:
        """Messages until every id in ``wanted`` arrived."""
        received: list[Any] = []
        async with asyncio.timeout(timeout_s):
            while not wanted <= {m.message_id for m in received}:
                message = await self.queue.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                    continue
                received.append(message)
        return received


@pytest.fixture
async def consumer(amqp_url: str) -> AsyncIterator[Consumer]:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, "trade.#")
        yield Consumer(queue)


async def cross(client: Any) -> dict[str, Any]:
    """A seller and a buyer whose orders trade once; returns the buyer's fill (REST body)."""
    admin = await make_admin(client, new_email("admin"))
    seller, buyer = await new_user(client), await new_user(client)
    for user, asset, amount in ((seller, "BTC", "1"), (buyer, "USDT", "100000")):
        assert (await credit(client, admin, user.user_id, asset, amount)).status_code == 201
    await placed(client, seller, side="sell", type="limit", quantity="0.5", price="30000")
    order = await placed(client, buyer, side="buy", type="limit", quantity="0.5", price="30000")
    assert order["status"] == "filled" and len(order["fills"]) == 1
    fill: dict[str, Any] = order["fills"][0]
    return fill


def check_trade(messages: list[Any], fill: dict[str, Any]) -> None:
    trade_id = fill["tradeId"]
    mine = [m for m in messages if m.message_id == f"trade-{trade_id}"]
    assert mine, "the trade was never exported"
    for message in mine:
        body = json.loads(message.body)
        assert body["id"] == message.message_id and body["tradeId"] == trade_id
        assert message.routing_key == "trade.BTC-USDT"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert (body["price"], body["quantity"]) == (fill["price"], fill["quantity"])  # as REST says


@pytest.mark.slow
async def test_a_trade_reaches_a_consumer(settings: Settings, amqp_url: str, consumer: Consumer) -> None:
    async with running_app(dataclasses.replace(settings, amqp_url=amqp_url)) as client:
        fill = await cross(client)
        check_trade(await consumer.receive({f"trade-{fill['tradeId']}"}), fill)


@pytest.mark.slow
async def test_a_trade_not_exported_before_a_restart_arrives_after_it(
    settings: Settings, amqp_url: str, consumer: Consumer
) -> None:
    # The broker cannot be reached: trading goes on, the trade waits in the store.
    async with running_app(dataclasses.replace(settings, amqp_url=UNREACHABLE_AMQP_URL)) as client:
        fill = await cross(client)
        assert client.app.state.runtime.outbox.exported_seq < client.app.state.runtime.engine.core.last_seq
    # Restarted on the same store, with the broker: the trade is replayed from the store.
    async with running_app(dataclasses.replace(settings, amqp_url=amqp_url)):
        check_trade(await consumer.receive({f"trade-{fill['tradeId']}"}), fill)
