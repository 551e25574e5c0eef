"""Binance user-data streams, and the connection plumbing every Binance WebSocket shares.

- ``/ws-api/v3`` (what ccxt ≥ 4.5.6 uses): ``userDataStream.subscribe.signature`` with
  ``apiKey``, ``timestamp``, ``recvWindow`` and ``signature`` = hex HMAC-SHA256 of the other
  params sorted by name and joined as ``k=v&...`` (no percent-encoding). The reply is
  ``{"id", "status": 200, "result": {"subscriptionId": N}}`` (N from 0 on each connection);
  events then arrive as ``{"subscriptionId": N, "event": {...}}``. Also
  ``userDataStream.unsubscribe`` (all, or ``params.subscriptionId``; each ends with an
  ``eventStreamTerminated`` event), ``ping`` and ``time``. Errors are
  ``{"id", "status", "error": {"code", "msg"}}`` with Binance's codes (-1021 timestamp, -1022
  signature, -2015 key, -1102 missing parameter, -1131 recvWindow).
- ``/ws/<listenKey>`` (the legacy flow, see ``streams``): raw events of the key's owner; the
  key is checked every minute, and when it expires or is deleted the stream sends
  ``listenKeyExpired`` and stops.

``serve`` runs one socket for any session: the per-IP connection limit shared with the
native ``/ws`` (``runtime.ws_connections``), the native bounded queue (a slow client is closed
with 1013) and the raw ASGI send.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol, cast

import msgspec
from litestar import Request, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from cambist.accounts.errors import AuthError
from cambist.accounts.permissions import Permission
from cambist.api.auth import client_ip
from cambist.api.runtime import Runtime
from cambist.binance import errors, signing
from cambist.binance.context import listen_keys
from cambist.binance.stream_hub import BinanceStreamHub, Sink, encode, hub_of, now_ms
from cambist.stream.connection import CLOSE_POLICY_VIOLATION, Connection
from cambist.stream.ws import MAX_CONNECTIONS_PER_IP, _frame_sender

MAX_MESSAGE_CHARS = 64 * 1024
TICK_S = 60.0  # how often a session's listenKeys are checked
MAX_USER_SUBSCRIPTIONS = 20  # per WS-API connection

_decode = msgspec.json.Decoder().decode

UNSUPPORTED = (-1020, "This operation is not supported.")
MALFORMED = (-1102, "Malformed request.")


class Session(Protocol):
    async def open(self) -> bool:
        """Work to do once connected; False closes the socket (an error was queued)."""
        ...

    async def handle(self, text: str) -> None: ...

    async def tick(self) -> None:
        """Called every ``TICK_S`` seconds."""
        ...

    def close(self) -> None:
        """Unsubscribe everything (idempotent)."""
        ...


async def serve(
    socket: WebSocket[Any, Any, Any], make: Callable[[Runtime, Connection, str | None], Session]
) -> None:
    runtime: Runtime = socket.app.state.runtime
    ip = client_ip(cast(Request[Any, Any, Any], socket))
    counts = runtime.ws_connections  # shared with the native /ws; one event loop, no lock
    await socket.accept()
    if counts.get(ip, 0) >= MAX_CONNECTIONS_PER_IP:
        await socket.close(code=CLOSE_POLICY_VIOLATION, reason="too many connections")
        return
    counts[ip] = counts.get(ip, 0) + 1
    connection = Connection()
    session: Session | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        hub = hub_of(runtime)
        await hub.wait_seeded()
        session = make(runtime, connection, ip)
        connection.on_drop = session.close

        async def close(code: int, reason: str) -> None:
            with contextlib.suppress(Exception):
                await socket.close(code=code, reason=reason)

        async def ticker(active: Session) -> None:
            while True:
                await asyncio.sleep(TICK_S)
                await active.tick()

        send = _frame_sender(socket)
        if not await session.open():
            # The error frames first, then the close (``drop`` would forget them).
            while not connection.queue.empty():
                item = connection.queue.get_nowait()
                if isinstance(item, str):
                    await send(item)
            await close(CLOSE_POLICY_VIOLATION, "invalid request")
            return
        writer = asyncio.create_task(connection.write(send, close), name="binance-ws-writer")
        tasks.append(writer)
        tasks.append(asyncio.create_task(ticker(session), name="binance-ws-tick"))
        reader = asyncio.create_task(_read(socket, session), name="binance-ws-reader")
        tasks.append(reader)
        await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if session is not None:
            session.close()
        connection.closing = True
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        left = counts.get(ip, 1) - 1
        if left > 0:
            counts[ip] = left
        else:
            counts.pop(ip, None)


async def _read(socket: WebSocket[Any, Any, Any], session: Session) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await socket.receive_data(mode="text")
            await session.handle(message if isinstance(message, str) else message.decode(errors="replace"))


# ---------------------------------------------------------------------- listenKeys


class ListenKeyFeed:
    """The user-data subscriptions of one connection made by listenKey (``/ws/<key>``, or a
    key named in ``/stream`` or SUBSCRIBE)."""

    def __init__(self, runtime: Runtime, hub: BinanceStreamHub) -> None:
        self.runtime = runtime
        self.hub = hub
        self.keys: dict[str, tuple[int, Sink]] = {}

    async def owner(self, key: str) -> int | None:
        return await self.runtime.read(listen_keys(self.runtime).owner, key)

    def add(self, key: str, account_id: int, sink: Sink) -> None:
        if key in self.keys:
            return
        self.keys[key] = (account_id, sink)
        self.hub.subscribe_user(account_id, sink)

    def remove(self, key: str) -> None:
        entry = self.keys.pop(key, None)
        if entry is not None:
            self.hub.unsubscribe_user(*entry)

    def clear(self) -> None:
        for key in list(self.keys):
            self.remove(key)

    async def check(self) -> None:
        """Stop the streams of keys that expired or were deleted, with ``listenKeyExpired``."""
        for key, (_, sink) in list(self.keys.items()):
            if await self.owner(key) is None:
                self.remove(key)
                sink.deliver(encode({"e": "listenKeyExpired", "E": now_ms(), "listenKey": key}))


# ---------------------------------------------------------------------- the WS-API


def ws_api_payload(params: dict[str, Any]) -> bytes:
    """What a WS-API request signs: the params but ``signature``, sorted, ``k=v&...``."""
    parts = []
    for name in sorted(params):
        if name == "signature":
            continue
        value = params[name]
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        parts.append(f"{name}={text}")
    return "&".join(parts).encode()


def _int_param(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise errors.invalid(name)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    raise errors.invalid(name)


def check_time(params: dict[str, Any], now: int) -> None:
    """WS-API parameters may be JSON numbers; the rules are REST's (``signing.check_window``)."""
    signing.check_window(_int_param(params, "timestamp"), _int_param(params, "recvWindow"), now)


class WsApiSession:
    def __init__(self, runtime: Runtime, connection: Connection, ip: str | None) -> None:
        self.runtime = runtime
        self.connection = connection
        self.ip = ip
        self.hub = hub_of(runtime)
        self.subscriptions: dict[int, tuple[int, Sink]] = {}  # subscription id -> (account, sink)
        self._next_id = 0

    async def open(self) -> bool:
        return True

    async def tick(self) -> None:
        return None

    def close(self) -> None:
        for account_id, sink in self.subscriptions.values():
            self.hub.unsubscribe_user(account_id, sink)
        self.subscriptions.clear()

    def _reply(self, request_id: Any, result: Any) -> None:
        self.connection.deliver(encode({"id": request_id, "status": 200, "result": result}))

    def _error(self, request_id: Any, error: errors.BinanceError) -> None:
        status = error.status if error.status >= 400 else 400
        body = {"id": request_id, "status": status, "error": {"code": error.code, "msg": error.msg}}
        self.connection.deliver(encode(body))

    async def handle(self, text: str) -> None:
        request_id: Any = None
        try:
            if len(text) > MAX_MESSAGE_CHARS:
                raise errors.error(MALFORMED)
            try:
                body = _decode(text)
            except msgspec.DecodeError:
                raise errors.error(MALFORMED) from None
            if not isinstance(body, dict):
                raise errors.error(MALFORMED)
            request_id = body.get("id")
            if request_id is not None and not isinstance(request_id, (str, int)):
                request_id = None
                raise errors.invalid("id")
            method = body.get("method")
            params = body.get("params", {})
            if params is None:
                params = {}
            if not isinstance(method, str) or not method:
                raise errors.mandatory("method")
            if not isinstance(params, dict):
                raise errors.invalid("params")
            await self._dispatch(request_id, method, params)
        except errors.BinanceError as error:
            self._error(request_id, error)

    async def _dispatch(self, request_id: Any, method: str, params: dict[str, Any]) -> None:
        if method == "ping":
            self._reply(request_id, {})
        elif method == "time":
            self._reply(request_id, {"serverTime": now_ms()})
        elif method == "userDataStream.subscribe.signature":
            await self._subscribe(request_id, params)
        elif method == "userDataStream.unsubscribe":
            self._unsubscribe(request_id, params)
        else:
            raise errors.error(UNSUPPORTED)

    async def _subscribe(self, request_id: Any, params: dict[str, Any]) -> None:
        api_key, signature = params.get("apiKey"), params.get("signature")
        if not isinstance(api_key, str) or not api_key:
            raise errors.mandatory("apiKey")
        if not isinstance(signature, str) or not signature:
            raise errors.mandatory("signature")
        check_time(params, now_ms())
        try:
            principal = await self.runtime.read(
                self.runtime.accounts.authenticate_payload_signature,
                api_key,
                ws_api_payload(params),
                signature,
                self.ip,
            )
            principal.require(Permission.READ)
        except AuthError as error:
            raise errors.from_auth_error(error) from None
        if self.connection.closing:
            return
        if len(self.subscriptions) >= MAX_USER_SUBSCRIPTIONS:
            raise errors.BinanceError(-1020, "Too many subscriptions on this connection.")
        subscription_id = self._next_id
        self._next_id += 1
        sink = Sink(self.connection, f'{{"subscriptionId":{subscription_id},"event":', "}")
        # The reply first, then events: both go through the connection's one queue.
        self._reply(request_id, {"subscriptionId": subscription_id})
        self.subscriptions[subscription_id] = (principal.user_id, sink)
        self.hub.subscribe_user(principal.user_id, sink)

    def _unsubscribe(self, request_id: Any, params: dict[str, Any]) -> None:
        wanted = _int_param(params, "subscriptionId")
        if wanted is not None and wanted not in self.subscriptions:
            raise errors.BinanceError(-1020, "The subscription does not exist.")
        ids = [wanted] if wanted is not None else list(self.subscriptions)
        self._reply(request_id, {})
        for subscription_id in ids:
            account_id, sink = self.subscriptions.pop(subscription_id)
            self.hub.unsubscribe_user(account_id, sink)
            sink.deliver(encode({"e": "eventStreamTerminated", "E": now_ms()}))


@websocket("/ws-api/v3", include_in_schema=False)
async def ws_api(socket: WebSocket[Any, Any, Any]) -> None:
    await serve(socket, WsApiSession)


ROUTES = [ws_api]
