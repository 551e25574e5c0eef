"""``RabbitExporter``: publishes export messages to a durable RabbitMQ topic exchange.

A robust connection (aio-pika reconnects it by itself once it was up), a channel with
publisher confirms, persistent messages: ``publish`` returns only when the broker confirmed
every message, so the outbox may move its cursor. A broker that cannot be reached raises,
and the outbox retries later; trading never waits for it.

Messages published while no queue is bound to the exchange are dropped by RabbitMQ, as with
any exchange: a consumer that must not miss events binds a durable queue of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aio_pika

from cambist.bus.export import EXCHANGE, ExportMessage

log = logging.getLogger(__name__)


class RabbitExporter:
    def __init__(self, url: str, *, exchange: str = EXCHANGE, timeout_s: float = 10.0) -> None:
        self._url = url
        self._exchange_name = exchange
        self._timeout_s = timeout_s
        self._connection: Any = None
        self._channel: Any = None
        self._exchange: Any = None
        self._lock = asyncio.Lock()

    async def _ready(self) -> Any:
        async with self._lock:
            if self._connection is None or self._connection.is_closed:
                self._connection = await aio_pika.connect_robust(self._url, timeout=self._timeout_s)
                self._channel = None
            if self._channel is None or self._channel.is_closed:
                self._channel = await self._connection.channel(publisher_confirms=True)
                self._exchange = await self._channel.declare_exchange(
                    self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                )
                log.info("event export connected to RabbitMQ exchange %s", self._exchange_name)
            return self._exchange

    async def publish(self, messages: list[ExportMessage]) -> None:
        if not messages:
            return
        try:
            exchange = await self._ready()
            # Started in order (frames go out in this order), confirmed together.
            publishes = [
                exchange.publish(
                    aio_pika.Message(
                        message.body,
                        message_id=message.message_id,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=message.routing_key,
                )
                for message in messages
            ]
            await asyncio.wait_for(asyncio.gather(*publishes), self._timeout_s)
        except Exception:
            # A channel in doubt is reopened on the next call (the outbox publishes again).
            await self._drop_channel()
            raise

    async def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):  # a broken channel may fail to close: it is gone
                await channel.close()

    async def close(self) -> None:
        await self._drop_channel()
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
