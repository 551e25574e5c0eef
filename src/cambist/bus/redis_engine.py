"""The engine's side of the Redis transport: commands in, outcomes and events out.

Commands arrive on one stream in the order gateways added them. The server reads after the
position committed with the engine's last batch (``Engine.input_position``), so a restarted
engine continues exactly where its last commit ended: an entry is applied at most once, and
every entry applied was committed with the position that covers it.

Every entry carries its age for free: a stream id is the Redis server's clock when it was
added. An entry older than the command timeout is answered ``expired`` and never applied,
because its gateway has already answered its client. This also makes a restart safe: what
queued up while the engine was down is refused, not executed late.

Outcomes go back on each gateway's reply stream, one entry per gateway per flush. Committed
batches are published on the events channel; an engine that falls behind publishing drops
batches rather than queueing without bound, and gateways notice the gap and reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cambist.bus import wire
from cambist.core.commands import decode_command
from cambist.core.events import Outcome
from cambist.core.exchange import ExchangeCore
from cambist.engine.engine import (
    CommittedBatch,
    Engine,
    EngineOverloaded,
    EngineUnavailable,
    OutcomeUnknown,
)

log = logging.getLogger(__name__)

READ_COUNT = 512  # entries per XREAD: one engine batch's worth
READ_BLOCK_MS = 1000
REPLY_STREAM_MAXLEN = 10_000
REPLY_STREAM_TTL_S = 60  # a gateway that went away leaves nothing behind for long
EVENTS_QUEUE_MAX = 1000  # batches waiting to be published; beyond it they are dropped
RECONNECT_DELAY_MAX_S = 2.0
CLOCK_REFRESH_S = 5.0
STOP_TIMEOUT_S = 5.0


class RedisEngineServer:
    """Runs beside an ``Engine`` in the engine process."""

    def __init__(
        self,
        engine: Engine,
        redis_url: str,
        namespace: str,
        *,
        command_timeout_ms: int = 5000,
        inbox_high_water: int | None = None,
    ) -> None:
        self._engine = engine
        self._url = redis_url
        self._keys = wire.Keys(namespace)
        self._timeout_ms = command_timeout_ms
        self._inbox_high_water = inbox_high_water or 4 * READ_COUNT
        self._instance = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._redis: aioredis.Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._replies: dict[str, list[wire.Reply]] = {}
        self._replies_ready = asyncio.Event()
        self._events: deque[bytes] = deque()
        self._events_ready = asyncio.Event()
        self._clock_offset_ms = 0  # Redis time minus local time
        self._clock_read_at = 0.0
        self.events_dropped = 0
        self.entries_read = 0

    async def start(self) -> None:
        self._redis = aioredis.Redis.from_url(self._url, socket_timeout=READ_BLOCK_MS / 1000 + 5)
        self._engine.subscribe(self._on_commit)
        self._engine.on_recovered(self._on_recovered)
        self._publish_event(wire.EngineRestarted(self._engine.last_seq))
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="cambist-redis-commands"),
            asyncio.create_task(self._reply_loop(), name="cambist-redis-replies"),
            asyncio.create_task(self._event_loop(), name="cambist-redis-events"),
            asyncio.create_task(self._heartbeat_loop(), name="cambist-redis-heartbeat"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
        self._tasks = []
        if self._redis is not None:
            # Gateways see the engine gone at once instead of when the heartbeat expires.
            with contextlib.suppress(RedisError, OSError):
                await self._redis.delete(self._keys.heartbeat)
            await self._redis.aclose()

    # ------------------------------------------------------------------ commands in

    async def _read_loop(self) -> None:
        # A connection of its own: XREAD BLOCK holds it for up to a second.
        reader = aioredis.Redis.from_url(self._url, socket_timeout=READ_BLOCK_MS / 1000 + 5)
        position = self._engine.input_position or "0-0"
        delay_s = 0.05
        try:
            while True:
                try:
                    while self._engine.inbox_depth() >= self._inbox_high_water:
                        await asyncio.sleep(0.001)  # back-pressure: entries wait in Redis
                    response: Any = await reader.xread(
                        {self._keys.commands: position}, count=READ_COUNT, block=READ_BLOCK_MS
                    )
                    await self._refresh_clock(reader)
                    delay_s = 0.05
                except (RedisError, OSError) as error:
                    log.warning("command stream unreachable (%s); retrying in %.2f s", error, delay_s)
                    await asyncio.sleep(delay_s)
                    delay_s = min(delay_s * 2, RECONNECT_DELAY_MAX_S)
                    continue
                now_ms = int(time.time() * 1000) + self._clock_offset_ms
                for _stream, entries in response:
                    for entry_id, fields in entries:
                        position = entry_id.decode()
                        self.entries_read += 1
                        self._take(position, fields, now_ms)
        finally:
            await reader.aclose()

    async def _refresh_clock(self, client: aioredis.Redis) -> None:
        if time.monotonic() - self._clock_read_at < CLOCK_REFRESH_S:
            return
        seconds, micros = await client.time()
        self._clock_offset_ms = seconds * 1000 + micros // 1000 - int(time.time() * 1000)
        self._clock_read_at = time.monotonic()

    def _take(self, position: str, fields: dict[bytes, bytes], now_ms: int) -> None:
        try:
            gateway = fields[wire.FIELD_GATEWAY].decode()
            request_id = int(fields[wire.FIELD_REQUEST])
        except (KeyError, ValueError, UnicodeDecodeError):
            log.error("command entry %s without a gateway or request id: skipped", position)
            return
        added_ms = int(position.split("-", 1)[0])
        if now_ms - added_ms > self._timeout_ms:
            self._reply(gateway, wire.Reply(request_id, error=wire.ReplyError.EXPIRED))
            return
        try:
            command = decode_command(fields[wire.FIELD_COMMAND])
        except Exception:  # any decoding failure: the entry is not a command we know
            log.error("command entry %s does not decode: skipped", position)
            self._reply(gateway, wire.Reply(request_id, error=wire.ReplyError.MALFORMED))
            return
        try:
            future = self._engine.submit(command, position)
        except EngineOverloaded as error:
            self._reply(gateway, wire.Reply(request_id, error=wire.ReplyError.OVERLOADED, message=str(error)))
            return
        except EngineUnavailable as error:
            self._reply(
                gateway, wire.Reply(request_id, error=wire.ReplyError.UNAVAILABLE, message=str(error))
            )
            return
        future.add_done_callback(lambda done: self._answer(gateway, request_id, done))

    def _answer(self, gateway: str, request_id: int, done: asyncio.Future[Outcome]) -> None:
        if done.cancelled():
            reply = wire.Reply(request_id, error=wire.ReplyError.UNAVAILABLE, message="the engine stopped")
        elif (error := done.exception()) is not None:
            # The engine's own messages tell the caller whether the command may have been
            # applied (a failed commit: unknown) or certainly not (stopping, recovering).
            unknown = isinstance(error, OutcomeUnknown)
            kind = wire.ReplyError.UNKNOWN if unknown else wire.ReplyError.UNAVAILABLE
            reply = wire.Reply(request_id, error=kind, message=str(error))
        else:
            reply = wire.Reply(request_id, outcome=done.result())
        self._reply(gateway, reply)

    # ------------------------------------------------------------------ outcomes out

    def _reply(self, gateway: str, reply: wire.Reply) -> None:
        self._replies.setdefault(gateway, []).append(reply)
        self._replies_ready.set()

    async def _reply_loop(self) -> None:
        assert self._redis is not None
        while True:
            await self._replies_ready.wait()
            self._replies_ready.clear()
            replies, self._replies = self._replies, {}
            for attempt in range(3):
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for gateway, answers in replies.items():
                            key = self._keys.replies(gateway)
                            pipe.xadd(
                                key,
                                {wire.FIELD_REPLIES: wire.encode(answers)},
                                maxlen=REPLY_STREAM_MAXLEN,
                                approximate=True,
                            )
                            pipe.expire(key, REPLY_STREAM_TTL_S)
                        await pipe.execute()
                    break
                except (RedisError, OSError) as error:
                    # Undelivered outcomes are not lost state: the commands are committed and
                    # the gateways answer "unknown, look it up" when they time out.
                    log.warning("replies not delivered (%s), attempt %d", error, attempt + 1)
                    await asyncio.sleep(0.05 * (attempt + 1))

    # ------------------------------------------------------------------ events out

    def _on_commit(self, batch: CommittedBatch) -> None:
        self._publish_event(wire.EventBatch.of(batch))

    def _on_recovered(self, core: ExchangeCore) -> None:
        self._publish_event(wire.EngineRestarted(core.last_seq))

    def _publish_event(self, event: wire.Event) -> None:
        if len(self._events) >= EVENTS_QUEUE_MAX:
            # Dropping one batch is a gap the gateways see and repair from the store; an
            # unbounded queue would hold the engine's memory hostage to Redis.
            self._events.popleft()
            self.events_dropped += 1
        self._events.append(wire.encode(event))
        self._events_ready.set()

    async def _event_loop(self) -> None:
        assert self._redis is not None
        while True:
            await self._events_ready.wait()
            self._events_ready.clear()
            while self._events:
                batch = list(self._events)
                self._events.clear()
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for payload in batch:
                            pipe.publish(self._keys.events, payload)
                        await pipe.execute()
                except (RedisError, OSError) as error:
                    # Published again once Redis answers (the queue stays bounded); a gateway
                    # that missed them meanwhile reloads from the store on reconnecting.
                    log.warning("events not published (%s); retrying", error)
                    room = EVENTS_QUEUE_MAX - len(self._events)
                    self._events.extendleft(reversed(batch[-room:] if room > 0 else []))
                    self.events_dropped += max(0, len(batch) - max(room, 0))
                    await asyncio.sleep(0.2)

    # ------------------------------------------------------------------ heartbeat

    async def _heartbeat_loop(self) -> None:
        assert self._redis is not None
        while True:
            status = self.status()
            try:
                await self._redis.set(self._keys.heartbeat, wire.encode(status), px=wire.HEARTBEAT_TTL_MS)
            except (RedisError, OSError) as error:
                log.warning("heartbeat not written: %s", error)
            await asyncio.sleep(wire.HEARTBEAT_INTERVAL_S)

    def status(self) -> wire.EngineStatus:
        engine = self._engine
        last_seq = engine.last_seq if engine.available else 0
        return wire.EngineStatus(self._instance, engine.available, last_seq, engine.inbox_depth())
