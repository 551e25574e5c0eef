"""Binance WebSocket market streams (``/ws/...``, ``/stream``) and user-data streams
(``/ws-api/v3``, ``/ws/<listenKey>``) (binance-compat.md §4).

- ``/ws/<anything>``: raw events. The path may name one stream (``/ws/btcusdt@trade``) or a
  listenKey (64 letters and digits); any other suffix made of digits or nothing (ccxt.pro
  opens ``/ws/0`` … ``/ws/49``) starts with no stream. ``/ws`` itself is the native API.
- ``/stream?streams=a/b``: the combined form, every event wrapped ``{"stream", "data"}``.

On both, ``{"method": "SUBSCRIBE"|"UNSUBSCRIBE", "params": [...], "id": N}`` is answered
``{"result": null, "id": N}``; ``LIST_SUBSCRIPTIONS`` with the list; ``SET_PROPERTY`` /
``GET_PROPERTY`` ``combined`` switch the wrapping. Errors are
``{"error": {"code": 2, "msg": ...}, "id": N}`` (``code`` 3 for a message that is not JSON),
and a request with any bad stream name changes nothing. At most 1024 streams per connection.

Streams: ``<symbol>@depth``, ``@depth@100ms``, ``@depth@1000ms``, ``@depth<5|10|20>[@100ms]``,
``@trade``, ``@aggTrade``, ``@kline_<interval>``, ``@miniTicker``, ``@ticker``,
``@bookTicker``, ``!miniTicker@arr``, ``!ticker@arr``; symbols are lower case, as Binance's.
The events and how they are made: ``stream_hub``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.params import FromPath

from cambist.api.runtime import Runtime
from cambist.binance import user_stream
from cambist.binance.context import symbols
from cambist.binance.stream_hub import INTERVALS, PARTIAL_DEPTHS, Sink, encode, hub_of
from cambist.binance.user_stream import MAX_MESSAGE_CHARS, ListenKeyFeed, serve
from cambist.stream.connection import Connection

MAX_STREAMS = 1024  # per connection, as Binance

_decode = msgspec.json.Decoder().decode
_LISTEN_KEY = re.compile(r"[A-Za-z0-9]{60,64}")

# Stream suffixes by their lower-case spelling -> Binance's spelling.
_SUFFIXES: dict[str, str] = {
    "depth": "depth",
    "depth@100ms": "depth@100ms",
    "depth@1000ms": "depth@1000ms",
    "trade": "trade",
    "aggtrade": "aggTrade",
    "miniticker": "miniTicker",
    "ticker": "ticker",
    "bookticker": "bookTicker",
}
for _levels in PARTIAL_DEPTHS:
    _SUFFIXES[f"depth{_levels}"] = f"depth{_levels}"
    _SUFFIXES[f"depth{_levels}@100ms"] = f"depth{_levels}@100ms"
_ALL_STREAMS = {"!miniticker@arr": "!miniTicker@arr", "!ticker@arr": "!ticker@arr"}


def stream_name(runtime: Runtime, name: Any) -> str | None:
    """The stream's name as the hub knows it (Binance's spelling), or None if there is none."""
    if not isinstance(name, str) or not name or len(name) > 100:
        return None
    fixed = _ALL_STREAMS.get(name.lower())
    if fixed is not None:
        return fixed
    symbol, at, suffix = name.partition("@")
    if not at:
        return None
    if suffix.startswith("kline_"):
        # kline_1m and kline_1M differ (minute and month): intervals keep their case.
        canonical: str | None = suffix if suffix[6:] in INTERVALS else None
    else:
        canonical = _SUFFIXES.get(suffix.lower())
    if canonical is None:
        return None
    if symbols(runtime).market(symbol.upper()) is None:
        return None
    return f"{symbol.lower()}@{canonical}"


def is_listen_key(name: Any) -> bool:
    return isinstance(name, str) and _LISTEN_KEY.fullmatch(name) is not None


class MarketSession:
    def __init__(
        self, runtime: Runtime, connection: Connection, initial: list[str], *, combined: bool
    ) -> None:
        self.runtime = runtime
        self.connection = connection
        self.hub = hub_of(runtime)
        self.combined = combined
        self.initial = initial
        self.streams: dict[str, Sink] = {}
        self.user = ListenKeyFeed(runtime, self.hub)

    # ------------------------------------------------------------------ frames

    def _send(self, body: dict[str, Any]) -> None:
        self.connection.deliver(encode(body))

    def _error(self, request_id: Any, msg: str, code: int = 2) -> None:
        self._send({"error": {"code": code, "msg": msg}, "id": request_id})

    def _sink(self, name: str) -> Sink:
        if self.combined:
            return Sink(self.connection, f'{{"stream":{encode(name)},"data":', "}")
        return Sink(self.connection)

    # ------------------------------------------------------------------ session

    async def open(self) -> bool:
        if not self.initial:
            return True
        problem = await self._subscribe(self.initial)
        if problem is not None:
            self._error(None, problem)
            return False
        return True

    async def tick(self) -> None:
        await self.user.check()

    def close(self) -> None:
        for name, sink in self.streams.items():
            self.hub.unsubscribe(name, sink)
        self.streams.clear()
        self.user.clear()

    async def handle(self, text: str) -> None:
        if len(text) > MAX_MESSAGE_CHARS:
            self._error(None, f"Invalid request: messages are at most {MAX_MESSAGE_CHARS} characters")
            return
        try:
            body = _decode(text)
        except msgspec.DecodeError:
            self._error(None, "Invalid JSON: the message is not JSON", code=3)
            return
        if not isinstance(body, dict):
            self._error(None, "Invalid request: the message must be a JSON object")
            return
        request_id = body.get("id")
        if request_id is not None and (
            isinstance(request_id, bool) or not isinstance(request_id, (int, str))
        ):
            self._error(None, "Invalid request: 'id' must be an integer, a string or null")
            return
        method = body.get("method")
        params = body.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                self._error(request_id, "Invalid request: 'params' must be a list of stream names")
                return
            if method == "SUBSCRIBE":
                problem = await self._subscribe(params)
                if problem is not None:
                    self._error(request_id, problem)
                    return
            else:
                self._unsubscribe(params)
            self._send({"result": None, "id": request_id})
        elif method == "LIST_SUBSCRIPTIONS":
            self._send({"result": [*self.streams, *self.user.keys], "id": request_id})
        elif method == "SET_PROPERTY":
            if not (isinstance(params, list) and len(params) == 2 and params[0] == "combined"):
                self._error(request_id, "Invalid request: only the 'combined' property can be set")
                return
            if not isinstance(params[1], bool):
                self._error(request_id, "Invalid request: 'combined' takes true or false")
                return
            self._set_combined(params[1])
            self._send({"result": None, "id": request_id})
        elif method == "GET_PROPERTY":
            if params != ["combined"]:
                self._error(request_id, "Invalid request: only the 'combined' property can be read")
                return
            self._send({"result": self.combined, "id": request_id})
        else:
            self._error(
                request_id,
                "Invalid request: 'method' must be one of SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, "
                "SET_PROPERTY, GET_PROPERTY",
            )

    # ------------------------------------------------------------------ subscriptions

    async def _subscribe(self, names: list[str]) -> str | None:
        """Subscribe to all of ``names`` or, with a reason, to none."""
        market: list[str] = []
        keys: list[tuple[str, int]] = []
        for raw in dict.fromkeys(names):
            name = stream_name(self.runtime, raw)
            if name is not None:
                market.append(name)
            elif is_listen_key(raw):
                if raw in self.user.keys:
                    continue
                owner = await self.user.owner(raw)
                if owner is None:
                    return f"Invalid request: listenKey {raw!r} does not exist"
                keys.append((raw, owner))
            else:
                return f"Invalid request: unknown stream {raw!r}"
        new = [n for n in dict.fromkeys(market) if n not in self.streams]
        if len(self.streams) + len(self.user.keys) + len(new) + len(keys) > MAX_STREAMS:
            return f"Invalid request: at most {MAX_STREAMS} streams per connection"
        if self.connection.closing:
            return None
        for name in new:
            sink = self.streams[name] = self._sink(name)
            self.hub.subscribe(name, sink)
        for key, owner in keys:
            self.user.add(key, owner, self._sink(key))
        return None

    def _unsubscribe(self, names: list[str]) -> None:
        for raw in names:
            name = stream_name(self.runtime, raw)
            if name is not None and name in self.streams:
                self.hub.unsubscribe(name, self.streams.pop(name))
            elif raw in self.user.keys:
                self.user.remove(raw)

    def _set_combined(self, combined: bool) -> None:
        if combined == self.combined:
            return
        self.combined = combined
        for name, old in list(self.streams.items()):
            self.hub.unsubscribe(name, old)
            sink = self.streams[name] = self._sink(name)
            self.hub.subscribe(name, sink)
        for key, (owner, _) in list(self.user.keys.items()):
            self.user.remove(key)
            self.user.add(key, owner, self._sink(key))


def _path_streams(rest: str) -> list[str]:
    """``/ws/<rest>``: stream names or listenKeys; ``0`` … ``49`` (ccxt.pro) and empty parts
    name nothing."""
    return [part for part in rest.split("/") if part and not (part.isdigit() and len(part) < 10)]


@websocket("/ws/{rest:path}", include_in_schema=False)
async def raw_streams(socket: WebSocket[Any, Any, Any], rest: FromPath[str]) -> None:
    initial = _path_streams(rest)
    await serve(
        socket, lambda runtime, connection, _ip: MarketSession(runtime, connection, initial, combined=False)
    )


@websocket("/stream", include_in_schema=False)
async def combined_streams(socket: WebSocket[Any, Any, Any]) -> None:
    param = socket.query_params.get("streams") or ""
    initial = [part for part in param.split("/") if part]
    await serve(
        socket, lambda runtime, connection, _ip: MarketSession(runtime, connection, initial, combined=True)
    )


ROUTES: list[Any] = [raw_streams, combined_streams, *user_stream.ROUTES]
