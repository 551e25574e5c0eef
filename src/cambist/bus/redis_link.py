"""The gateway's side of the Redis transport: ``RedisEngineLink`` (an ``EngineLink``).

- Commands: added to the engine's command stream by one sender task, many per round trip.
  Each waits for its outcome at most the command timeout plus a grace period; the engine
  refuses entries older than the timeout, so a caller that got "not applied" can trust it.
- Outcomes: read from this gateway's own reply stream.
- Availability: the engine's heartbeat key, read every 250 ms. A command is refused at once
  (503) while the heartbeat is missing, stale or says unavailable, and the commands waiting
  when the engine stops beating are answered "unknown" at once, so nothing waits on a dead
  engine.
- Committed batches: the events channel, followed by sequence number. At start, after a gap
  (a batch missed while Redis or this gateway lagged), after a reconnect and after the engine
  restarted, the gateway reloads the whole market state from the store, which the engine
  commits before it publishes, and goes on from there.

Every loop reconnects by itself with a capped back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cambist.bus import wire
from cambist.core.commands import Command, encode_command
from cambist.core.events import Outcome
from cambist.engine.engine import UNKNOWN_OUTCOME, EngineOverloaded, EngineUnavailable, OutcomeUnknown
from cambist.engine.link import BatchListener, MarketState, StateListener, load_market_state
from cambist.store.trading import TradingStore

log = logging.getLogger(__name__)

STATUS_POLL_S = 0.25
STALE_AFTER_MS = 1500  # three missed heartbeats
REPLY_GRACE_MS = 2000  # on top of the command timeout: the engine's reply on its way
COMMAND_STREAM_MAXLEN = 100_000
SEND_BATCH_MAX = 512
IN_FLIGHT_MAX = 10_000  # commands sent or waiting to be sent; beyond it callers get 503
READ_BLOCK_MS = 1000
RECONNECT_DELAY_MAX_S = 2.0
STOP_TIMEOUT_S = 3.0
CLOSE_TIMEOUT_S = 1.0

NOT_APPLIED = {
    wire.ReplyError.EXPIRED: "the engine did not take the command in time; it was not applied",
    wire.ReplyError.MALFORMED: "the engine could not read the command; it was not applied",
}


class RedisEngineLink:
    def __init__(
        self,
        redis_url: str,
        namespace: str,
        store: TradingStore,
        *,
        command_timeout_ms: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = redis_url
        self._keys = wire.Keys(namespace)
        self._store = store
        self._timeout_s = (command_timeout_ms + REPLY_GRACE_MS) / 1000
        self._clock = clock
        self.gateway_id = secrets.token_hex(8)
        self._replies_key = self._keys.replies(self.gateway_id)
        self._redis: aioredis.Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._request_ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Outcome]] = {}
        self._outgoing: list[tuple[int, bytes]] = []
        self._outgoing_ready = asyncio.Event()
        self._batch_listeners: list[BatchListener] = []
        self._state_listeners: list[StateListener] = []
        self._status: wire.EngineStatus | None = None
        self._status_at = float("-inf")
        self._seq = 0  # last committed sequence number applied from events or a reload
        self._state: MarketState | None = None
        self.reloads = 0

    # ------------------------------------------------------------------ EngineLink

    @property
    def available(self) -> bool:
        status = self._status
        fresh = self._clock() - self._status_at < wire.HEARTBEAT_TTL_MS / 1000
        return status is not None and status.available and fresh

    @property
    def last_seq(self) -> int:
        return self._seq

    def inbox_depth(self) -> int:
        return self._status.inbox if self._status is not None else 0

    def subscribe(self, listener: BatchListener) -> None:
        self._batch_listeners.append(listener)

    def on_state(self, listener: StateListener) -> None:
        self._state_listeners.append(listener)

    def market_state(self) -> MarketState:
        if self._state is None:
            raise EngineUnavailable("the gateway has not loaded the market state yet")
        return self._state

    async def execute(self, command: Command) -> Outcome:
        if not self.available:
            raise EngineUnavailable("the engine is not available")
        if len(self._waiting) >= IN_FLIGHT_MAX:
            raise EngineOverloaded("too many commands in flight from this gateway")
        request_id = next(self._request_ids)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self._outgoing.append((request_id, encode_command(command)))
        self._outgoing_ready.set()
        try:
            return await asyncio.wait_for(future, self._timeout_s)
        except TimeoutError:
            raise OutcomeUnknown(UNKNOWN_OUTCOME) from None
        finally:
            self._waiting.pop(request_id, None)

    async def start(self) -> None:
        self._redis = aioredis.Redis.from_url(self._url, socket_timeout=READ_BLOCK_MS / 1000 + 5)
        # The state first, so the API has markets to serve even while Redis is away.
        await self._reload()
        await self._poll_status()  # commands are taken from the first moment the engine is there
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._status_loop(), name="cambist-engine-status"),
            asyncio.create_task(self._send_loop(), name="cambist-command-sender"),
            asyncio.create_task(self._reply_loop(), name="cambist-reply-reader"),
            asyncio.create_task(self._event_loop(ready), name="cambist-event-follower"),
        ]
        # Until the channel is subscribed, batches would be missed unnoticed: wait a moment
        # for it (the loop reloads after subscribing anyway).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), 5.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: closing a pub/sub connection can hang in redis-py (issue #3941).
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
        self._tasks = []
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(EngineUnavailable("the gateway is stopping"))
        if self._redis is not None:
            await self._redis.aclose()

    # ------------------------------------------------------------------ engine status

    async def _status_loop(self) -> None:
        while True:
            await self._poll_status()
            await asyncio.sleep(STATUS_POLL_S)

    async def _poll_status(self) -> None:
        assert self._redis is not None
        status: wire.EngineStatus | None = None
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self._keys.heartbeat)
                pipe.pttl(self._keys.heartbeat)
                raw, ttl_ms = await pipe.execute()
            # The engine rewrites the key every HEARTBEAT_INTERVAL_S: a key that has aged
            # more than STALE_AFTER_MS belongs to an engine that stopped beating.
            if raw is not None and ttl_ms > wire.HEARTBEAT_TTL_MS - STALE_AFTER_MS:
                status = wire.decode_status(raw)
        except (RedisError, OSError) as error:
            log.debug("engine heartbeat unreadable: %s", error)
        except Exception:  # a heartbeat that does not decode: treat as absent
            log.exception("engine heartbeat malformed")
        was_available = self.available
        if status is not None:
            previous = self._status
            self._status, self._status_at = status, self._clock()
            if previous is not None and previous.instance != status.instance:
                log.info("the engine restarted (%s)", status.instance)
        else:
            self._status = None
        if was_available and not self.available:
            self._fail_waiting()

    def _fail_waiting(self) -> None:
        """The engine went away: what it was given may or may not be committed, and waiting
        out the whole timeout would not tell more. Callers learn it now."""
        log.warning("the engine stopped answering; %d commands in flight", len(self._waiting))
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(OutcomeUnknown(UNKNOWN_OUTCOME))

    # ------------------------------------------------------------------ commands out

    async def _send_loop(self) -> None:
        assert self._redis is not None
        while True:
            await self._outgoing_ready.wait()
            self._outgoing_ready.clear()
            while self._outgoing:
                batch = self._outgoing[:SEND_BATCH_MAX]
                del self._outgoing[:SEND_BATCH_MAX]
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for request_id, payload in batch:
                            pipe.xadd(
                                self._keys.commands,
                                {
                                    wire.FIELD_GATEWAY: self.gateway_id,
                                    wire.FIELD_REQUEST: request_id,
                                    wire.FIELD_COMMAND: payload,
                                },
                                maxlen=COMMAND_STREAM_MAXLEN,
                                approximate=True,
                            )
                        await pipe.execute()
                except (RedisError, OSError) as error:
                    # Some entries may have reached the stream before the connection broke.
                    log.warning("commands not sent: %s", error)
                    for request_id, _ in batch:
                        self._fail(request_id, OutcomeUnknown(UNKNOWN_OUTCOME))

    def _fail(self, request_id: int, error: Exception) -> None:
        future = self._waiting.get(request_id)
        if future is not None and not future.done():
            future.set_exception(error)

    # ------------------------------------------------------------------ outcomes in

    async def _reply_loop(self) -> None:
        reader = aioredis.Redis.from_url(self._url, socket_timeout=READ_BLOCK_MS / 1000 + 5)
        position = "0-0"  # the stream is this process's own: everything in it is for us
        delay_s = 0.05
        try:
            while True:
                try:
                    response: Any = await reader.xread(
                        {self._replies_key: position}, count=100, block=READ_BLOCK_MS
                    )
                    delay_s = 0.05
                except (RedisError, OSError) as error:
                    log.warning("reply stream unreachable (%s); retrying in %.2f s", error, delay_s)
                    await asyncio.sleep(delay_s)
                    delay_s = min(delay_s * 2, RECONNECT_DELAY_MAX_S)
                    continue
                for _stream, entries in response:
                    for entry_id, fields in entries:
                        position = entry_id.decode()
                        self._resolve_all(fields)
        finally:
            await reader.aclose()

    def _resolve_all(self, fields: dict[bytes, bytes]) -> None:
        try:
            replies = wire.decode_replies(fields[wire.FIELD_REPLIES])
        except Exception:
            log.exception("reply entry does not decode")
            return
        for reply in replies:
            future = self._waiting.get(reply.request_id)
            if future is None or future.done():
                continue  # the caller gave up already
            if reply.outcome is not None:
                future.set_result(reply.outcome)
            elif reply.error == wire.ReplyError.OVERLOADED:
                future.set_exception(EngineOverloaded(reply.message or "the engine inbox is full"))
            elif reply.error == wire.ReplyError.UNKNOWN:
                future.set_exception(OutcomeUnknown(reply.message or UNKNOWN_OUTCOME))
            else:
                message = NOT_APPLIED.get(reply.error or "", reply.message or "the engine is not available")
                future.set_exception(EngineUnavailable(message))

    # ------------------------------------------------------------------ committed batches in

    async def _event_loop(self, ready: asyncio.Event) -> None:
        delay_s = 0.05
        while True:
            client = aioredis.Redis.from_url(self._url, socket_timeout=READ_BLOCK_MS / 1000 + 5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._keys.events)
                # Subscribed: from here on no batch goes unseen, so the store is a safe base.
                await self._reload()
                ready.set()
                delay_s = 0.05
                while True:
                    message = await pubsub.get_message(timeout=READ_BLOCK_MS / 1000)
                    if message is not None and message.get("type") == "message":
                        await self._on_event(message["data"])
            except (RedisError, OSError) as error:
                log.warning("event channel unreachable (%s); retrying in %.2f s", error, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, RECONNECT_DELAY_MAX_S)
            finally:
                # Bounded: closing a pub/sub connection can hang in redis-py (issue #3941).
                for closing in (pubsub.aclose(), client.aclose()):
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(closing, CLOSE_TIMEOUT_S)

    async def _on_event(self, payload: bytes) -> None:
        try:
            event = wire.decode_event(payload)
        except Exception:
            log.exception("event does not decode; reloading")
            await self._reload()
            return
        if isinstance(event, wire.EngineRestarted):
            await self._reload()
            return
        last_seq = event.changes.last_seq
        if last_seq <= self._seq:
            return  # already part of the state we loaded
        if event.first_seq > self._seq + 1:
            log.info("missed batches %d..%d; reloading", self._seq + 1, event.first_seq - 1)
            await self._reload()
            if last_seq <= self._seq:
                return
        self._seq = last_seq
        batch = event.committed()
        for listener in self._batch_listeners:
            try:
                listener(batch)
            except Exception:
                log.exception("batch listener failed")

    async def _reload(self) -> None:
        delay_s = 0.1
        while True:
            try:
                state = await asyncio.to_thread(load_market_state, self._store)
                break
            except Exception as error:  # the store away: keep serving what we have, retry
                log.warning("market state not loaded (%s); retrying in %.1f s", error, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, RECONNECT_DELAY_MAX_S)
        first = self._state is None
        self._state, self._seq = state, state.sequence
        self.reloads += 1
        if first:
            return
        for listener in self._state_listeners:
            try:
                listener(state)
            except Exception:
                log.exception("state listener failed")
