"""The ``/ws`` route: subscribe and unsubscribe, ping, authenticate for private channels.

Client messages are JSON objects (``op``: subscribe, unsubscribe, auth, ping; or the short
form ``{"action": "subscribe", "symbol": ...}``); see API.md "WebSocket ``/ws``". Every frame
the server sends goes through the connection's queue, so replies and channel data keep their
order (an order-book snapshot always comes after ``subscribed`` and before its updates).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec
from litestar import Request, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from cambist.accounts.errors import AuthError
from cambist.accounts.permissions import Permission, Principal
from cambist.api.auth import client_ip
from cambist.api.runtime import Runtime
from cambist.stream.connection import CLOSE_POLICY_VIOLATION, Connection
from cambist.stream.fanout import PRIVATE_CHANNELS, encode

# Where ``cambist.api.app.CambistApp`` keeps the server's own send of a WebSocket.
RAW_SEND_KEY = "cambist.raw_send"

MAX_SUBSCRIPTIONS = 50  # channels per connection
MAX_CONNECTIONS_PER_IP = 50
MAX_MESSAGE_CHARS = 16 * 1024
PING_INTERVAL_S = 20.0
SIGNED_PATH = "/ws"

_decode = msgspec.json.Decoder().decode


def _error(code: str, text: str) -> str:
    return encode({"type": "error", "code": code, "message": text})


class _Session:
    def __init__(self, runtime: Runtime, connection: Connection, ip: str | None) -> None:
        self.runtime = runtime
        self.stream = runtime.stream
        self.connection = connection
        self.ip = ip
        connection.on_drop = self.unsubscribe_all

    def reply(self, frame: str) -> None:
        self.connection.deliver(frame)

    def unsubscribe_all(self) -> None:
        connection = self.connection
        for channel in connection.channels:
            self.stream.unsubscribe(connection, channel, connection.account_id)
        connection.channels.clear()

    async def handle(self, text: str) -> None:
        if len(text) > MAX_MESSAGE_CHARS:
            self.reply(_error("MESSAGE_TOO_LARGE", f"messages are at most {MAX_MESSAGE_CHARS} characters"))
            return
        try:
            body = _decode(text)
        except msgspec.DecodeError:
            self.reply(_error("INVALID_JSON", "the message is not valid JSON"))
            return
        if not isinstance(body, dict):
            self.reply(_error("INVALID_MESSAGE", "the message must be a JSON object"))
            return
        op = body.get("op")
        if op is None and "action" in body:
            await self._short_form(body)
        elif op == "ping":
            self.reply(encode({"type": "pong"}))
        elif op in ("subscribe", "unsubscribe"):
            channels = body.get("channels")
            if (
                not isinstance(channels, list)
                or not channels
                or not all(isinstance(c, str) for c in channels)
            ):
                self.reply(_error("INVALID_CHANNELS", "channels must be a non-empty list of strings"))
                return
            if op == "subscribe":
                self.subscribe(channels)
            else:
                self.unsubscribe(channels)
        elif op == "auth":
            await self.authenticate(body)
        else:
            self.reply(_error("UNKNOWN_OP", "op must be one of subscribe, unsubscribe, auth, ping"))

    async def _short_form(self, body: dict[str, Any]) -> None:
        action, symbol = body.get("action"), body.get("symbol")
        if action not in ("subscribe", "unsubscribe"):
            self.reply(_error("UNKNOWN_OP", "action must be subscribe or unsubscribe"))
            return
        if not isinstance(symbol, str):
            self.reply(_error("INVALID_MESSAGE", "symbol must be a string"))
            return
        channels = [f"trades:{symbol}", f"orderbook:{symbol}", f"ticker:{symbol}"]
        if action == "subscribe":
            self.subscribe(channels)
        else:
            self.unsubscribe(channels)

    def subscribe(self, channels: list[str]) -> None:
        connection = self.connection
        if connection.closing:
            return
        wanted = list(dict.fromkeys(channels))  # once each, in the order asked
        for channel in wanted:
            problem = self.stream.validate(channel)
            if problem is not None:
                self.reply(_error(*problem))
                return
            if channel in PRIVATE_CHANNELS and connection.account_id is None:
                self.reply(
                    _error("UNAUTHORIZED", f"authenticate first ('op': 'auth') to subscribe to {channel}")
                )
                return
        new = [c for c in wanted if c not in connection.channels]
        if len(connection.channels) + len(new) > MAX_SUBSCRIPTIONS:
            self.reply(
                _error("TOO_MANY_SUBSCRIPTIONS", f"at most {MAX_SUBSCRIPTIONS} channels per connection")
            )
            return
        self.reply(encode({"type": "subscribed", "channels": wanted}))
        for channel in new:
            connection.channels.add(channel)
            # Order-book snapshots are delivered inside subscribe, right after ``subscribed``.
            self.stream.subscribe(connection, channel, connection.account_id)

    def unsubscribe(self, channels: list[str]) -> None:
        connection = self.connection
        wanted = list(dict.fromkeys(channels))
        for channel in wanted:
            if channel in connection.channels:
                connection.channels.discard(channel)
                self.stream.unsubscribe(connection, channel, connection.account_id)
        self.reply(encode({"type": "unsubscribed", "channels": wanted}))

    async def authenticate(self, body: dict[str, Any]) -> None:
        if self.connection.account_id is not None:
            self.reply(_error("ALREADY_AUTHENTICATED", "this connection is already authenticated"))
            return
        accounts = self.runtime.accounts
        token = body.get("token")
        fields = (body.get("apiKey"), body.get("timestamp"), body.get("signature"))
        try:
            principal: Principal
            if isinstance(token, str) and token:
                principal = await self.runtime.read(accounts.authenticate_access_token, token)
            elif all(isinstance(f, str) and f for f in fields):
                api_key, timestamp, signature = cast(tuple[str, str, str], fields)
                principal = await self.runtime.read(
                    accounts.authenticate_signed_request,
                    api_key,
                    timestamp,
                    signature,
                    "GET",
                    SIGNED_PATH,
                    b"",
                    None,
                    self.ip,
                )
                principal.require(Permission.READ)
            else:
                self.reply(
                    _error("INVALID_MESSAGE", "auth needs 'token', or 'apiKey', 'timestamp' and 'signature'")
                )
                return
        except AuthError as error:
            self.reply(_error(error.code, error.message))
            return
        self.connection.account_id = principal.user_id
        self.reply(encode({"type": "authenticated", "userId": principal.user_id}))


@websocket("/ws", include_in_schema=False)
async def ws(socket: WebSocket[Any, Any, Any]) -> None:
    runtime: Runtime = socket.app.state.runtime
    ip = client_ip(cast(Request[Any, Any, Any], socket))
    counts = runtime.ws_connections  # per client IP; one event loop, no lock
    connection = Connection()
    await socket.accept()
    if counts.get(ip, 0) >= MAX_CONNECTIONS_PER_IP:
        await socket.send_text(
            _error("TOO_MANY_CONNECTIONS", f"at most {MAX_CONNECTIONS_PER_IP} per address")
        )
        await socket.close(code=CLOSE_POLICY_VIOLATION, reason="too many connections")
        return
    counts[ip] = counts.get(ip, 0) + 1
    session = _Session(runtime, connection, ip)

    async def close(code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await socket.close(code=code, reason=reason)

    async def pinger() -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL_S)
            connection.deliver('{"type":"ping"}')

    writer = asyncio.create_task(connection.write(_frame_sender(socket), close), name="cambist-ws-writer")
    ping = asyncio.create_task(pinger(), name="cambist-ws-ping")
    reader = asyncio.create_task(_read(socket, session), name="cambist-ws-reader")
    try:
        await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        session.unsubscribe_all()
        connection.closing = True
        for task in (ping, reader, writer):
            task.cancel()
        for task in (ping, reader, writer):
            with contextlib.suppress(BaseException):
                await task
        left = counts.get(ip, 1) - 1
        if left > 0:
            counts[ip] = left
        else:
            counts.pop(ip, None)


def _frame_sender(socket: WebSocket[Any, Any, Any]) -> Callable[[str], Awaitable[None]]:
    """Send text frames with the server's own ``send`` when the app kept it (``CambistApp``):
    the socket is accepted by then, and Litestar's wrappers cost more than the send itself."""
    raw_send = cast(
        "Callable[[dict[str, Any]], Awaitable[None]] | None",
        socket.scope.get(RAW_SEND_KEY),  # type: ignore[call-overload]
    )
    if raw_send is None:
        return socket.send_text

    async def send_frame(frame: str) -> None:
        await raw_send({"type": "websocket.send", "bytes": None, "text": frame})

    return send_frame


async def _read(socket: WebSocket[Any, Any, Any], session: _Session) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await socket.receive_data(mode="text")
            await session.handle(message if isinstance(message, str) else message.decode(errors="replace"))


ROUTES = [ws]
