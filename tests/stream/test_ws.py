"""The WebSocket API of API.md ("WebSocket ``/ws``") against the embedded server."""

from __future__ import annotations

import asyncio
import queue
import time
from decimal import Decimal
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession

from cambist.stream import connection as connection_module
from cambist.stream import ws as ws_module
from cambist.stream.connection import Connection

from .conftest import API, Exchange, User, sign

WAIT_S = 5.0


def receive(socket: WebSocketTestSession, timeout: float = WAIT_S) -> dict[str, Any]:
    message: dict[str, Any] = socket.receive_json(timeout=timeout)
    return message


def assert_silent(socket: WebSocketTestSession) -> None:
    with pytest.raises(queue.Empty):
        socket.receive_json(timeout=0.3)


def subscribe(socket: WebSocketTestSession, *channels: str) -> None:
    socket.send_json({"op": "subscribe", "channels": list(channels)})
    assert receive(socket) == {"type": "subscribed", "channels": list(channels)}


def authenticate(socket: WebSocketTestSession, user: User) -> None:
    socket.send_json({"op": "auth", "token": user.token})
    assert receive(socket) == {"type": "authenticated", "userId": user.user_id}


def expect_error(socket: WebSocketTestSession, code: str) -> dict[str, Any]:
    message = receive(socket)
    assert message["type"] == "error", message
    assert set(message) == {"type", "code", "message"}, message
    assert message["code"] == code, message
    assert message["message"], message
    return message


def apply(book: dict[str, str], levels: list[list[str]]) -> None:
    for price, quantity in levels:
        if Decimal(quantity) == 0:
            book.pop(price, None)
        else:
            book[price] = quantity


def test_orderbook_snapshot_then_contiguous_updates(client: TestClient[Any], exchange: Exchange) -> None:
    symbol = exchange.market()
    maker = exchange.user(USDT="100000", **{symbol.split("-")[0]: "10"})
    taker = exchange.user(USDT="100000")
    exchange.place(maker, symbol=symbol, side="sell", type="limit", price="100", quantity="1")
    with client.websocket_connect("/ws") as socket:
        subscribe(socket, f"orderbook:{symbol}", f"trades:{symbol}")
        snapshot = receive(socket)
        assert snapshot["channel"] == f"orderbook:{symbol}" and snapshot["type"] == "snapshot"
        asks = {p: q for p, q in snapshot["data"]["asks"]}
        bids = {p: q for p, q in snapshot["data"]["bids"]}
        assert asks == {"100": "1"} and bids == {}

        exchange.place(maker, symbol=symbol, side="sell", type="limit", price="101", quantity="2")
        exchange.place(maker, symbol=symbol, side="buy", type="limit", price="90", quantity="0.5")
        exchange.place(taker, symbol=symbol, side="buy", type="limit", price="101", quantity="1.5")
        book = client.get(f"{API}/orderbook/{symbol}").json()

        sequence = snapshot["data"]["sequence"]
        trades = []
        while sequence != book["sequence"]:
            message = receive(socket)
            if message["channel"] == f"trades:{symbol}":
                trades.append(message["data"])
                continue
            assert message["type"] == "update"
            data = message["data"]
            assert data["prevSequence"] == sequence, (data, sequence)
            assert data["sequence"] > sequence
            sequence = data["sequence"]
            apply(asks, data["asks"])
            apply(bids, data["bids"])
        while len(trades) < 2:
            trades.append(receive(socket)["data"])
        assert [[p, q] for p, q in sorted(asks.items(), key=lambda kv: Decimal(kv[0]))] == book["asks"]
        assert [[p, q] for p, q in sorted(bids.items(), key=lambda kv: -Decimal(kv[0]))] == book["bids"]
        assert [(t["price"], t["quantity"], t["takerSide"]) for t in trades] == [
            ("100", "1", "buy"),
            ("101", "0.5", "buy"),
        ]
        assert all(set(t) >= {"tradeId", "price", "quantity", "takerSide", "time"} for t in trades)
        assert trades[0]["tradeId"] < trades[1]["tradeId"]


def test_ticker_and_klines(client: TestClient[Any], exchange: Exchange) -> None:
    symbol = exchange.market()
    base = symbol.split("-")[0]
    maker = exchange.user(USDT="100000", **{base: "10"})
    taker = exchange.user(USDT="100000")
    with client.websocket_connect("/ws") as socket:
        subscribe(socket, f"ticker:{symbol}", f"klines:{symbol}:1m", f"klines:{symbol}:1d")
        exchange.place(maker, symbol=symbol, side="sell", type="limit", price="100", quantity="1")
        exchange.place(maker, symbol=symbol, side="sell", type="limit", price="110", quantity="1")
        exchange.place(maker, symbol=symbol, side="buy", type="limit", price="95", quantity="1")
        exchange.place(taker, symbol=symbol, side="buy", type="limit", price="110", quantity="1.5")
        messages = {}
        for _ in range(3):
            message = receive(socket)
            assert message["type"] == "update"
            messages[message["channel"]] = message["data"]
        ticker = messages[f"ticker:{symbol}"]
        assert ticker["lastPrice"] == "110" and ticker["bestBid"] == "95" and ticker["bestAsk"] == "110"
        for interval in ("1m", "1d"):
            candle = messages[f"klines:{symbol}:{interval}"]
            assert candle["interval"] == interval
            assert (candle["open"], candle["high"], candle["low"], candle["close"]) == (
                "100",
                "110",
                "100",
                "110",
            )
            assert candle["volume"] == "1.5" and candle["count"] == 2
            assert candle["openTime"] <= time.time() * 1000 <= candle["closeTime"] + 1
        rest = client.get(f"{API}/klines/{symbol}", params={"interval": "1m"}).json()["data"]
        assert rest[-1][:6] == [
            messages[f"klines:{symbol}:1m"][k] for k in ("openTime", "open", "high", "low", "close", "volume")
        ]


def test_short_form_subscribes_trades_book_and_ticker(client: TestClient[Any], exchange: Exchange) -> None:
    with client.websocket_connect("/ws") as socket:
        socket.send_json({"action": "subscribe", "symbol": "BTC-USDT"})
        channels = ["trades:BTC-USDT", "orderbook:BTC-USDT", "ticker:BTC-USDT"]
        assert receive(socket) == {"type": "subscribed", "channels": channels}
        assert receive(socket)["type"] == "snapshot"
        socket.send_json({"op": "unsubscribe", "channels": channels})
        assert receive(socket) == {"type": "unsubscribed", "channels": channels}


def test_private_channels_carry_only_the_users_own_events(
    client: TestClient[Any], exchange: Exchange
) -> None:
    symbol = exchange.market()
    base = symbol.split("-")[0]
    maker = exchange.user(**{base: "5"})
    taker = exchange.user(USDT="1000")
    bystander = exchange.user(USDT="1000")
    key, secret = exchange.api_key(taker)
    with (
        client.websocket_connect("/ws") as maker_ws,
        client.websocket_connect("/ws") as taker_ws,
        client.websocket_connect("/ws") as other_ws,
    ):
        authenticate(maker_ws, maker)
        timestamp = str(int(time.time() * 1000))
        taker_ws.send_json(
            {
                "op": "auth",
                "apiKey": key,
                "timestamp": timestamp,
                "signature": sign(secret, timestamp + "GET/ws"),
            }
        )
        assert receive(taker_ws) == {"type": "authenticated", "userId": taker.user_id}
        authenticate(other_ws, bystander)
        for socket in (maker_ws, taker_ws, other_ws):
            subscribe(socket, "orders", "fills", "balances")

        sell = exchange.place(maker, symbol=symbol, side="sell", type="limit", price="100", quantity="1")
        buy = exchange.place(taker, symbol=symbol, side="buy", type="limit", price="100", quantity="1")

        def drain(socket: WebSocketTestSession) -> dict[str, list[dict[str, Any]]]:
            got: dict[str, list[dict[str, Any]]] = {"orders": [], "fills": [], "balances": []}
            while True:
                try:
                    message = socket.receive_json(timeout=0.5)
                except queue.Empty:
                    return got
                assert message["type"] == "update"
                got[message["channel"]].append(message["data"])

        mine = drain(maker_ws)
        assert {o["orderId"] for o in mine["orders"]} == {sell["orderId"]}
        assert mine["orders"][-1]["status"] == "filled" and mine["orders"][-1]["fills"] == []
        assert [(f["orderId"], f["liquidity"], f["side"]) for f in mine["fills"]] == [
            (sell["orderId"], "maker", "sell")
        ]
        assert mine["fills"][0]["fee"] == "0.1" and mine["fills"][0]["feeAsset"] == "USDT"
        last = {b["asset"]: (b["available"], b["locked"]) for b in mine["balances"]}
        assert last == {base: ("4", "0"), "USDT": ("99.9", "0")}

        theirs = drain(taker_ws)
        assert {o["orderId"] for o in theirs["orders"]} == {buy["orderId"]}
        assert [(f["orderId"], f["liquidity"], f["side"]) for f in theirs["fills"]] == [
            (buy["orderId"], "taker", "buy")
        ]
        assert {b["asset"] for b in theirs["balances"]} == {base, "USDT"}
        assert_silent(other_ws)


def test_private_channels_need_auth(client: TestClient[Any], exchange: Exchange) -> None:
    with client.websocket_connect("/ws") as socket:
        for channel in ("orders", "fills", "balances"):
            socket.send_json({"op": "subscribe", "channels": [channel]})
            expect_error(socket, "UNAUTHORIZED")
        socket.send_json({"op": "auth", "token": "not-a-token"})
        expect_error(socket, "UNAUTHORIZED")
        user = exchange.user()
        key, secret = exchange.api_key(user)
        timestamp = str(int(time.time() * 1000))
        bad = sign(secret, timestamp + "GET/other")
        socket.send_json({"op": "auth", "apiKey": key, "timestamp": timestamp, "signature": bad})
        assert receive(socket)["type"] == "error"
        socket.send_json({"op": "auth"})
        expect_error(socket, "INVALID_MESSAGE")
        socket.send_json({"op": "subscribe", "channels": ["orders"]})
        expect_error(socket, "UNAUTHORIZED")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "INVALID_JSON"),
        ("[1, 2]", "INVALID_MESSAGE"),
        ('{"op": "dance"}', "UNKNOWN_OP"),
        ("{}", "UNKNOWN_OP"),
        ('{"action": "dance", "symbol": "BTC-USDT"}', "UNKNOWN_OP"),
        ('{"action": "subscribe", "symbol": 5}', "INVALID_MESSAGE"),
        ('{"op": "subscribe"}', "INVALID_CHANNELS"),
        ('{"op": "subscribe", "channels": []}', "INVALID_CHANNELS"),
        ('{"op": "subscribe", "channels": [1]}', "INVALID_CHANNELS"),
        ('{"op": "subscribe", "channels": ["news:BTC-USDT"]}', "UNKNOWN_CHANNEL"),
        ('{"op": "subscribe", "channels": ["trades"]}', "UNKNOWN_SYMBOL"),
        ('{"op": "subscribe", "channels": ["trades:NOPE-USDT"]}', "UNKNOWN_SYMBOL"),
        ('{"action": "subscribe", "symbol": "NOPE-USDT"}', "UNKNOWN_SYMBOL"),
        ('{"op": "subscribe", "channels": ["klines:BTC-USDT:7m"]}', "UNKNOWN_CHANNEL"),
        ('{"op": "subscribe", "channels": ["klines:NOPE-USDT:1m"]}', "UNKNOWN_SYMBOL"),
        ('{"op": "subscribe", "channels": ["orders@1"]}', "UNKNOWN_CHANNEL"),
        ("x" * 20_000, "MESSAGE_TOO_LARGE"),
    ],
)
def test_bad_input_is_an_error_frame(client: TestClient[Any], frame: str, code: str) -> None:
    with client.websocket_connect("/ws") as socket:
        socket.send_text(frame)
        expect_error(socket, code)
        socket.send_json({"op": "ping"})  # the connection stays usable
        assert receive(socket) == {"type": "pong"}


def test_subscription_limit(client: TestClient[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_module, "MAX_SUBSCRIPTIONS", 3)
    with client.websocket_connect("/ws") as socket:
        subscribe(socket, "trades:BTC-USDT", "ticker:BTC-USDT")
        socket.send_json({"op": "subscribe", "channels": ["trades:ETH-USDT", "ticker:ETH-USDT"]})
        expect_error(socket, "TOO_MANY_SUBSCRIPTIONS")
        subscribe(socket, "trades:BTC-USDT", "trades:ETH-USDT")  # one already held: fits


def wait_all_closed(client: TestClient[Any]) -> None:
    """A closed session's handler finishes on the app's loop a moment after ``__exit__``."""
    deadline = time.monotonic() + WAIT_S
    while client.app.state.runtime.ws_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not client.app.state.runtime.ws_connections


def test_connections_per_ip_are_limited(client: TestClient[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    wait_all_closed(client)
    monkeypatch.setattr(ws_module, "MAX_CONNECTIONS_PER_IP", 2)
    with client.websocket_connect("/ws") as first, client.websocket_connect("/ws") as second:
        with client.websocket_connect("/ws") as third:
            expect_error(third, "TOO_MANY_CONNECTIONS")
            with pytest.raises(WebSocketDisconnect) as refused:
                third.receive_json(timeout=WAIT_S)
            assert refused.value.code == 1008
        for socket in (first, second):
            socket.send_json({"op": "ping"})
            assert receive(socket) == {"type": "pong"}
    wait_all_closed(client)
    with client.websocket_connect("/ws") as again:  # the count went down on close
        again.send_json({"op": "ping"})
        assert receive(again) == {"type": "pong"}


def test_ping_pong_and_server_ping(client: TestClient[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_module, "PING_INTERVAL_S", 0.05)
    with client.websocket_connect("/ws") as socket:
        socket.send_json({"op": "ping"})
        messages = [receive(socket), receive(socket)]
        assert {"type": "pong"} in messages and {"type": "ping"} in messages


def test_slow_consumer_is_dropped_with_1013() -> None:
    async def scenario() -> None:
        dropped: list[bool] = []
        connection = Connection(maxsize=3)
        connection.on_drop = lambda: dropped.append(True)
        for n in range(3):
            connection.deliver(f"frame {n}")
        assert not connection.closing
        connection.deliver("one too many")  # never blocks, never raises
        assert connection.closing and dropped == [True]
        connection.deliver("after")  # ignored
        sent: list[str] = []
        closed: list[int] = []

        async def send(frame: str) -> None:
            sent.append(frame)

        async def close(code: int, reason: str) -> None:
            closed.append(code)

        await asyncio.wait_for(connection.write(send, close), 1)
        assert sent == [] and closed == [connection_module.CLOSE_TRY_AGAIN_LATER] == [1013]

    asyncio.run(scenario())


def test_slow_client_is_closed_without_slowing_others(
    client: TestClient[Any], exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection whose queue is full is closed with 1013 over the wire; others carry on."""
    symbol = exchange.market()
    maker = exchange.user(USDT="100000")
    monkeypatch.setattr(connection_module, "SEND_QUEUE_MAX", 1)
    with client.websocket_connect("/ws") as slow:
        monkeypatch.setattr(connection_module, "SEND_QUEUE_MAX", 1000)
        with client.websocket_connect("/ws") as fast:
            fast.send_json({"op": "subscribe", "channels": [f"orderbook:{symbol}"]})
            assert receive(fast)["type"] == "subscribed" and receive(fast)["type"] == "snapshot"
            # The slow client's queue (1 frame) overflows at its own subscribe: subscribed + snapshot.
            slow.send_json({"op": "subscribe", "channels": [f"orderbook:{symbol}"]})
            codes = []
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    codes.append(receive(slow)["type"])
            assert closed.value.code == 1013
            exchange.place(maker, symbol=symbol, side="buy", type="limit", price="10", quantity="1")
            assert receive(fast)["type"] == "update"
