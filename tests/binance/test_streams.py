"""The Binance WebSocket streams (binance-compat.md §4) against the embedded server: market
streams at ``/ws/...`` and ``/stream``, the WS-API user-data subscription at ``/ws-api/v3``, the
listenKey stream at ``/ws/<listenKey>``; and ccxt.pro's own handlers fed with the events.

Like ``tests/stream``, these use the synchronous ``TestClient``: the app, its engine and every
WebSocket share the portal's one event loop. One app for the module; each test makes its own
users and market.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import queue
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession

from cambist.accounts.passwords import fast_passwords_for_tests
from cambist.api.app import create_app
from cambist.binance.context import listen_keys
from cambist.binance.stream_hub import close_time, hub_of, open_time
from cambist.config import Settings, load_settings

API = "/api/v1"
PASSWORD = "correct horse battery staple"
WAIT_S = 5.0
_counter = itertools.count(1)


# ---------------------------------------------------------------------- fixtures and helpers


def settings_for(data_dir: Path) -> Settings:
    return load_settings(
        {
            "CAMBIST_DATA_DIR": str(data_dir),
            "CAMBIST_DATABASE_URL": f"sqlite:///{data_dir}/cambist.db",
            "CAMBIST_SECRET_KEY": "test-secret-key-" + "0" * 32,
        }
    )


class Exchange:
    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client
        self.runtime = client.app.state.runtime
        email = self.email("bws-admin")
        self.runtime.accounts.create_user(email, PASSWORD, ["user", "admin"])
        self.admin = self.login(email)

    @staticmethod
    def email(prefix: str) -> str:
        return f"{prefix}{next(_counter)}-{time.time_ns()}@example.com"

    def login(self, email: str) -> dict[str, str]:
        response = self.client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['accessToken']}"}

    def user(self, **amounts: str) -> tuple[int, dict[str, str]]:
        email = self.email("bws")
        response = self.client.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        user_id = response.json()["userId"]
        headers = self.login(email)
        for asset, amount in amounts.items():
            self.credit(user_id, asset, amount)
        return user_id, headers

    def credit(self, user_id: int, asset: str, amount: str) -> None:
        body = {"userId": user_id, "asset": asset, "amount": amount, "reason": "test funding"}
        response = self.client.post(f"{API}/admin/credits", json=body, headers=self.admin)
        assert response.status_code == 201, response.text

    def market(self) -> tuple[str, str]:
        """A new market: (Cambist symbol, lower-case Binance symbol)."""
        base = f"BWS{next(_counter)}"
        response = self.client.post(
            f"{API}/admin/assets", json={"asset": base, "scale": 8}, headers=self.admin
        )
        assert response.status_code == 201, response.text
        body = {
            "symbol": f"{base}-USDT",
            "baseAsset": base,
            "quoteAsset": "USDT",
            "tickSize": "0.01",
            "lotSize": "0.0001",
            "minQuantity": "0.0001",
            "minNotional": "5",
            "makerFee": "0.001",
            "takerFee": "0.001",
        }
        response = self.client.post(f"{API}/admin/markets", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return f"{base}-USDT", f"{base}usdt".lower()

    def place(self, headers: dict[str, str], **order: Any) -> dict[str, Any]:
        response = self.client.post(f"{API}/orders", json=order, headers=headers)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def api_key(self, headers: dict[str, str], permissions: list[str] | None = None) -> tuple[str, str]:
        body = {"label": "bws", "permissions": permissions or ["read"]}
        response = self.client.post(f"{API}/api-keys", json=body, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()["apiKey"], response.json()["secret"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    app = create_app(settings_for(tmp_path_factory.mktemp("binance-ws")), demo=False)
    with TestClient(app=app) as client:
        client.app.state.runtime.accounts._passwords = fast_passwords_for_tests()
        yield client


@pytest.fixture(scope="module")
def exchange(client: TestClient[Any]) -> Exchange:
    return Exchange(client)


def receive(socket: WebSocketTestSession, timeout: float = WAIT_S) -> Any:
    return socket.receive_json(timeout=timeout)


def drain(socket: WebSocketTestSession, wait: float = 0.5) -> list[Any]:
    got = []
    while True:
        try:
            got.append(socket.receive_json(timeout=wait))
        except queue.Empty:
            return got


def assert_silent(socket: WebSocketTestSession) -> None:
    with pytest.raises(queue.Empty):
        socket.receive_json(timeout=0.3)


def subscribe(socket: WebSocketTestSession, *streams: str, request_id: Any = 1) -> None:
    socket.send_json({"method": "SUBSCRIBE", "params": list(streams), "id": request_id})
    assert receive(socket) == {"result": None, "id": request_id}


def expect_error(socket: WebSocketTestSession, request_id: Any, code: int = 2) -> str:
    message = receive(socket)
    assert set(message) == {"error", "id"}, message
    assert message["id"] == request_id
    assert message["error"]["code"] == code and message["error"]["msg"], message
    msg: str = message["error"]["msg"]
    return msg


def is_decimal_string(value: Any) -> bool:
    return isinstance(value, str) and "e" not in value.lower() and Decimal(value) >= 0


def ws_api_sign(secret: str, params: dict[str, Any]) -> str:
    """binance-compat.md §3, written out independently of the server: sorted ``k=v&...``."""
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def ws_api_subscribe(
    socket: WebSocketTestSession, key: str, secret: str, *, request_id: Any = "1", **override: Any
) -> dict[str, Any]:
    params: dict[str, Any] = {"apiKey": key, "recvWindow": 10000, "timestamp": int(time.time() * 1000)}
    params.update({k: v for k, v in override.items() if k != "signature"})
    params["signature"] = override.get("signature") or ws_api_sign(secret, params)
    socket.send_json({"id": request_id, "method": "userDataStream.subscribe.signature", "params": params})
    reply: dict[str, Any] = receive(socket)
    return reply


def depth_sequence(client: TestClient[Any], symbol: str) -> int:
    sequence: int = client.app.state.runtime.hub.depth(symbol).sequence
    return sequence


# ---------------------------------------------------------------------- routing and methods


def test_native_ws_is_untouched_and_binance_paths_route_here(client: TestClient[Any]) -> None:
    with client.websocket_connect("/ws") as native:
        native.send_json({"op": "ping"})
        assert receive(native) == {"type": "pong"}
    for path in ("/ws/0", "/ws/49", "/stream"):
        with client.websocket_connect(path) as socket:
            socket.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 7})
            assert receive(socket) == {"result": [], "id": 7}


def test_subscribe_unsubscribe_list_and_acks(client: TestClient[Any], exchange: Exchange) -> None:
    _, lower = exchange.market()
    streams = [f"{lower}@depth@100ms", f"{lower}@trade", f"{lower}@kline_1m", "!miniTicker@arr"]
    with client.websocket_connect("/ws/0") as socket:
        subscribe(socket, *streams, request_id=1)
        socket.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 2})
        assert receive(socket) == {"result": streams, "id": 2}
        socket.send_json({"method": "UNSUBSCRIBE", "params": [f"{lower}@trade"], "id": 3})
        assert receive(socket) == {"result": None, "id": 3}
        socket.send_json({"method": "LIST_SUBSCRIPTIONS", "id": "four"})
        assert receive(socket) == {"result": [s for s in streams if not s.endswith("@trade")], "id": "four"}
        socket.send_json({"method": "GET_PROPERTY", "params": ["combined"], "id": 5})
        assert receive(socket) == {"result": False, "id": 5}


def test_bad_requests_get_error_frames_and_change_nothing(
    client: TestClient[Any], exchange: Exchange
) -> None:
    _, lower = exchange.market()
    with client.websocket_connect("/ws/1") as socket:
        socket.send_json({"method": "SUBSCRIBE", "params": [f"{lower}@trade", "nosuchsymbol@trade"], "id": 1})
        expect_error(socket, 1)
        socket.send_json({"method": "SUBSCRIBE", "params": [f"{lower}@kline_7m"], "id": 2})
        expect_error(socket, 2)
        socket.send_json({"method": "SUBSCRIBE", "params": [f"{lower}@nonsense"], "id": 3})
        expect_error(socket, 3)
        socket.send_json({"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 4})
        expect_error(socket, 4)
        socket.send_json({"method": "FROB", "params": [], "id": 5})
        expect_error(socket, 5)
        socket.send_text("{not json")
        expect_error(socket, None, code=3)
        socket.send_json(["SUBSCRIBE"])
        expect_error(socket, None)
        socket.send_json({"method": "SUBSCRIBE", "params": ["0" * 64], "id": 6})  # no such listenKey
        expect_error(socket, 6)
        socket.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 7})
        assert receive(socket) == {"result": [], "id": 7}
    with client.websocket_connect(f"/ws/{lower}@bogus") as socket:
        expect_error(socket, None)
        with pytest.raises(WebSocketDisconnect):
            receive(socket)


def test_stream_limit_per_connection(client: TestClient[Any], exchange: Exchange, monkeypatch: Any) -> None:
    from cambist.binance import streams as streams_module

    monkeypatch.setattr(streams_module, "MAX_STREAMS", 2)
    _, lower = exchange.market()
    with client.websocket_connect("/ws/2") as socket:
        subscribe(socket, f"{lower}@trade", f"{lower}@aggTrade")
        socket.send_json({"method": "SUBSCRIBE", "params": [f"{lower}@ticker"], "id": 9})
        assert "at most" in expect_error(socket, 9)


# ---------------------------------------------------------------------- order book


def apply(book: dict[Decimal, Decimal], levels: list[list[str]]) -> None:
    for price, quantity in levels:
        if Decimal(quantity) == 0:
            book.pop(Decimal(price), None)
        else:
            book[Decimal(price)] = Decimal(quantity)


def test_depth_updates_are_contiguous_with_the_rest_snapshot(
    client: TestClient[Any], exchange: Exchange
) -> None:
    symbol, lower = exchange.market()
    base = symbol.split("-")[0]
    _, maker = exchange.user(USDT="100000", **{base: "10"})
    _, taker = exchange.user(USDT="100000")
    exchange.place(maker, symbol=symbol, side="sell", type="limit", price="100", quantity="1")
    with client.websocket_connect("/ws/3") as socket:
        subscribe(socket, f"{lower}@depth@100ms", f"{lower}@depth")
        # The REST snapshot after the ack, as ccxt.pro takes it.
        snapshot_id = depth_sequence(client, symbol)
        rest = client.get("/api/v3/depth", params={"symbol": lower.upper(), "limit": 1000})
        if rest.status_code == 200:  # the REST facade's /depth, when present
            assert rest.json()["lastUpdateId"] == snapshot_id
        native = client.get(f"{API}/orderbook/{symbol}").json()
        asks = {Decimal(p): Decimal(q) for p, q in native["asks"]}
        bids = {Decimal(p): Decimal(q) for p, q in native["bids"]}

        exchange.place(maker, symbol=symbol, side="sell", type="limit", price="101", quantity="2")
        exchange.place(maker, symbol=symbol, side="buy", type="limit", price="90", quantity="0.5")
        exchange.place(taker, symbol=symbol, side="buy", type="limit", price="101", quantity="1.5")
        final_id = depth_sequence(client, symbol)

        messages: list[dict[str, Any]] = []
        while not messages or messages[-1]["u"] != final_id:
            message = receive(socket)
            assert message["e"] == "depthUpdate"
            assert set(message) == {"e", "E", "s", "U", "u", "b", "a"}
            assert message["s"] == lower.upper()
            messages.append(message)
        messages.append(receive(socket))
        # Both streams get each diff, one after the other.
        diffs = messages[::2]
        assert messages[1::2] == diffs
        assert diffs[0]["U"] <= snapshot_id + 1 <= diffs[0]["u"]
        for before, after in itertools.pairwise(diffs):
            assert after["U"] == before["u"] + 1
        assert diffs[-1]["u"] == final_id
        for diff in diffs:
            apply(asks, diff["a"])
            apply(bids, diff["b"])
            for price, quantity in diff["a"] + diff["b"]:
                assert is_decimal_string(price) and is_decimal_string(quantity)
        native = client.get(f"{API}/orderbook/{symbol}").json()
        assert asks == {Decimal(p): Decimal(q) for p, q in native["asks"]}
        assert bids == {Decimal(p): Decimal(q) for p, q in native["bids"]}


# ---------------------------------------------------------------------- trades, klines, tickers


def test_every_market_stream_has_binances_shape(client: TestClient[Any], exchange: Exchange) -> None:
    symbol, lower = exchange.market()
    upper = lower.upper()
    base = symbol.split("-")[0]
    _, maker = exchange.user(USDT="100000", **{base: "10"})
    _, taker = exchange.user(USDT="100000")
    exchange.place(maker, symbol=symbol, side="buy", type="limit", price="95", quantity="1")
    names = ["trade", "aggTrade", "kline_1m", "kline_1h", "miniTicker", "ticker", "bookTicker"]
    with client.websocket_connect("/ws/4") as socket:
        subscribe(socket, *(f"{lower}@{n}" for n in names), "!miniTicker@arr", "!ticker@arr")
        exchange.place(maker, symbol=symbol, side="sell", type="limit", price="100", quantity="1")
        exchange.place(maker, symbol=symbol, side="sell", type="limit", price="110", quantity="1")
        exchange.place(taker, symbol=symbol, side="buy", type="limit", price="110", quantity="1.5")
        events = drain(socket)
    by_kind: dict[str, list[Any]] = {}
    for event in events:
        if isinstance(event, list):
            by_kind.setdefault(event[0]["e"] + "@arr", []).append(event)
        elif "e" in event:
            key = event["e"] + ("_" + event["k"]["i"] if event["e"] == "kline" else "")
            by_kind.setdefault(key, []).append(event)
        else:
            by_kind.setdefault("bookTicker", []).append(event)

    trades = by_kind["trade"]
    assert [(Decimal(t["p"]), Decimal(t["q"]), t["m"]) for t in trades] == [
        (100, 1, False),
        (110, Decimal("0.5"), False),
    ]
    assert trades[0]["p"] == "100.000000" and trades[0]["q"] == "1.00000000"  # padded to the scale
    for t in trades:
        assert set(t) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"} and t["s"] == upper
        assert isinstance(t["t"], int) and isinstance(t["T"], int) and t["M"] is True
    aggs = by_kind["aggTrade"]
    assert [a["a"] for a in aggs] == [t["t"] for t in trades]
    assert all(set(a) == {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"} for a in aggs)

    kline = by_kind["kline_1m"][-1]
    k = kline["k"]
    assert set(k) == {"t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"}
    assert [Decimal(k[f]) for f in "ohlcv"] == [100, 110, 100, 110, Decimal("1.5")]
    assert (k["n"], k["s"], k["i"]) == (2, upper, "1m")
    assert k["T"] == k["t"] + 59_999 and k["t"] % 60_000 == 0 and k["x"] is False
    assert Decimal(k["q"]) == Decimal("155") and Decimal(k["V"]) == Decimal("1.5")
    assert by_kind["kline_1h"][-1]["k"]["i"] == "1h"

    mini = by_kind["24hrMiniTicker"][-1]
    assert set(mini) == {"e", "E", "s", "c", "o", "h", "l", "v", "q"}
    assert [Decimal(mini[f]) for f in "ohlcv"] == [100, 110, 100, 110, Decimal("1.5")]
    full = by_kind["24hrTicker"][-1]
    assert set(full) == set(
        [
            "e",
            "E",
            "s",
            "p",
            "P",
            "w",
            "x",
            "c",
            "Q",
            "b",
            "B",
            "a",
            "A",
            "o",
            "h",
            "l",
            "v",
            "q",
            "O",
            "C",
            "F",
            "L",
            "n",
        ]
    )
    assert [Decimal(full[f]) for f in "pPcQ"] == [10, 10, 110, Decimal("0.5")] and full["n"] == 2
    assert full["P"] == "10.000"
    assert (Decimal(full["b"]), Decimal(full["a"])) == (95, 110)
    assert Decimal(full["w"]) == Decimal("103.333333") and full["C"] - full["O"] == 86_400_000
    assert full["F"] == trades[0]["t"] and full["L"] == trades[1]["t"]
    arr_mini = by_kind["24hrMiniTicker@arr"][-1]
    assert [m["s"] for m in arr_mini] == [upper] and arr_mini[0] == mini
    assert by_kind["24hrTicker@arr"][-1][0]["s"] == upper

    book = by_kind["bookTicker"][-1]
    assert set(book) == {"u", "s", "b", "B", "a", "A"}
    assert book["s"] == upper
    assert [Decimal(book[f]) for f in "bBaA"] == [95, 1, 110, Decimal("0.5")]
    assert book["u"] == depth_sequence(client, symbol)


def test_raw_path_stream_and_combined_stream(client: TestClient[Any], exchange: Exchange) -> None:
    symbol, lower = exchange.market()
    base = symbol.split("-")[0]
    _, maker = exchange.user(**{base: "10"})
    _, taker = exchange.user(USDT="100000")
    with (
        client.websocket_connect(f"/ws/{lower}@trade") as raw,
        client.websocket_connect(f"/stream?streams={lower}@trade/{lower}@depth5") as combined,
    ):
        exchange.place(maker, symbol=symbol, side="sell", type="limit", price="100", quantity="1")
        exchange.place(taker, symbol=symbol, side="buy", type="market", quantity="0.25")
        assert receive(raw)["e"] == "trade"
        wrapped = drain(combined)
        streams = [m["stream"] for m in wrapped]
        assert set(streams) == {f"{lower}@trade", f"{lower}@depth5"}
        assert all(set(m) == {"stream", "data"} for m in wrapped)
        trade = next(m["data"] for m in wrapped if m["stream"] == f"{lower}@trade")
        assert trade["e"] == "trade" and trade["q"] == "0.25000000"
        partial = [m["data"] for m in wrapped if m["stream"] == f"{lower}@depth5"][-1]
        assert partial == {
            "lastUpdateId": depth_sequence(client, symbol),
            "bids": [],
            "asks": [["100.000000", "0.75000000"]],
        }
        # SET_PROPERTY combined false: the same subscriptions, unwrapped.
        combined.send_json({"method": "SET_PROPERTY", "params": ["combined", False], "id": 1})
        assert receive(combined) == {"result": None, "id": 1}
        exchange.place(taker, symbol=symbol, side="buy", type="market", quantity="0.25")
        assert {m.get("e", "partial") for m in drain(combined)} == {"trade", "partial"}


def test_kline_interval_boundaries() -> None:
    t = 1_700_000_123_456  # 2023-11-14T22:15:23Z, a Tuesday
    assert open_time("1m", t) == 1_700_000_100_000
    assert open_time("1w", t) == 1_699_833_600_000  # Monday 2023-11-13 00:00 UTC
    assert open_time("1M", t) == 1_698_796_800_000  # 2023-11-01
    assert close_time("1M", open_time("1M", t)) == 1_701_388_800_000 - 1
    assert close_time("3d", open_time("3d", t)) - open_time("3d", t) == 3 * 86_400_000 - 1


# ---------------------------------------------------------------------- user data


def collect_user_events(socket: WebSocketTestSession, wrap: str | None) -> list[dict[str, Any]]:
    events = []
    for message in drain(socket):
        if wrap == "ws-api":
            assert set(message) == {"subscriptionId", "event"} and message["subscriptionId"] == 0
            events.append(message["event"])
        else:
            events.append(message)
    return events


def check_user_flow(
    exchange: Exchange, socket: WebSocketTestSession, user: tuple[int, dict[str, str]], wrap: str | None
) -> None:
    symbol, lower = exchange.market()
    base = symbol.split("-")[0]
    user_id, headers = user
    _, other = exchange.user(**{base: "10"})
    exchange.place(other, symbol=symbol, side="sell", type="limit", price="100", quantity="0.4")
    resting = exchange.place(
        headers, symbol=symbol, side="buy", type="limit", price="90", quantity="1", clientOrderId="rest-1"
    )
    taker = exchange.place(
        headers, symbol=symbol, side="buy", type="limit", price="100", quantity="1", timeInForce="IOC"
    )
    cancel = exchange.client.delete(f"{API}/orders/{resting['orderId']}", headers=headers)
    assert cancel.status_code in (200, 204), cancel.text
    exchange.credit(user_id, base, "2")
    events = collect_user_events(socket, wrap)
    reports = [e for e in events if e["e"] == "executionReport"]
    fields = set(
        [
            "e",
            "E",
            "s",
            "c",
            "S",
            "o",
            "f",
            "q",
            "p",
            "P",
            "F",
            "g",
            "C",
            "x",
            "X",
            "r",
            "i",
            "l",
            "z",
            "L",
            "n",
            "N",
            "T",
            "t",
            "I",
            "w",
            "m",
            "M",
            "O",
            "Z",
            "Y",
            "Q",
            "W",
            "V",
        ]
    )
    for report in reports:
        assert fields <= set(report), fields - set(report)
        assert report["s"] == lower.upper()
    summary = [(r["i"], r["x"], r["X"], r["z"]) for r in reports]
    assert summary == [
        (resting["orderId"], "NEW", "NEW", "0.00000000"),
        (taker["orderId"], "NEW", "NEW", "0.00000000"),
        (taker["orderId"], "TRADE", "PARTIALLY_FILLED", "0.40000000"),
        (taker["orderId"], "EXPIRED", "EXPIRED", "0.40000000"),
        (resting["orderId"], "CANCELED", "CANCELED", "0.00000000"),
    ], summary
    fill = reports[2]
    assert (Decimal(fill["l"]), Decimal(fill["L"]), fill["m"], fill["o"], fill["f"], fill["S"]) == (
        Decimal("0.4"),
        100,
        False,
        "LIMIT",
        "IOC",
        "BUY",
    )
    assert isinstance(fill["t"], int) and fill["t"] > 0 and fill["N"] == base
    assert Decimal(fill["n"]) == Decimal("0.0004") and Decimal(fill["Z"]) == Decimal("40")
    assert reports[0]["c"] == "rest-1" and reports[0]["w"] is True
    positions = [e for e in events if e["e"] == "outboundAccountPosition"]
    assert positions and all(set(p) == {"e", "E", "u", "B"} for p in positions)
    assert all(set(b) == {"a", "f", "l"} for p in positions for b in p["B"])
    last_usdt = [b for p in positions for b in p["B"] if b["a"] == "USDT"][-1]
    assert (Decimal(last_usdt["f"]), Decimal(last_usdt["l"])) == (Decimal("1000") - 40, 0)
    credits = [e for e in events if e["e"] == "balanceUpdate"]
    assert len(credits) == 1 and (credits[0]["a"], credits[0]["d"]) == (base, "2.00000000")
    assert set(credits[0]) == {"e", "E", "a", "d", "T"}


def test_ws_api_user_data_stream(client: TestClient[Any], exchange: Exchange) -> None:
    user = exchange.user(USDT="1000")
    key, secret = exchange.api_key(user[1])
    with client.websocket_connect("/ws-api/v3") as socket:
        socket.send_json({"id": 1, "method": "ping"})
        assert receive(socket) == {"id": 1, "status": 200, "result": {}}
        socket.send_json({"id": 2, "method": "time"})
        assert abs(receive(socket)["result"]["serverTime"] - time.time() * 1000) < 60_000
        assert ws_api_subscribe(socket, key, secret) == {
            "id": "1",
            "status": 200,
            "result": {"subscriptionId": 0},
        }
        check_user_flow(exchange, socket, user, "ws-api")
        socket.send_json({"id": "9", "method": "userDataStream.unsubscribe"})
        assert receive(socket) == {"id": "9", "status": 200, "result": {}}
        terminated = receive(socket)
        assert terminated["subscriptionId"] == 0 and terminated["event"]["e"] == "eventStreamTerminated"
        exchange.credit(user[0], "USDT", "1")
        assert_silent(socket)


def test_ws_api_refusals(client: TestClient[Any], exchange: Exchange) -> None:
    user = exchange.user(USDT="10")
    key, secret = exchange.api_key(user[1])
    now = int(time.time() * 1000)

    def refused(reply: dict[str, Any], code: int) -> None:
        assert set(reply) == {"id", "status", "error"}, reply
        assert reply["status"] >= 400 and reply["error"]["code"] == code, reply
        assert reply["error"]["msg"]

    with client.websocket_connect("/ws-api/v3") as socket:
        refused(ws_api_subscribe(socket, key, secret, signature="0" * 64), -1022)
        refused(ws_api_subscribe(socket, "no-such-key", secret), -2015)
        refused(ws_api_subscribe(socket, key, "wrong-secret"), -1022)
        refused(ws_api_subscribe(socket, key, secret, timestamp=now - 60_000), -1021)
        refused(ws_api_subscribe(socket, key, secret, timestamp=now + 10_000), -1021)
        refused(ws_api_subscribe(socket, key, secret, recvWindow=70_000), -1131)
        socket.send_json({"id": 5, "method": "userDataStream.subscribe.signature", "params": {"apiKey": key}})
        refused(receive(socket), -1102)
        socket.send_json({"id": 6, "method": "order.place", "params": {}})
        refused(receive(socket), -1020)
        socket.send_text("nope")
        refused(receive(socket), -1102)
        # Nothing was subscribed: no events for this user.
        exchange.credit(user[0], "USDT", "1")
        assert_silent(socket)


def test_listen_key_stream(client: TestClient[Any], exchange: Exchange) -> None:
    user = exchange.user(USDT="1000")
    keys = listen_keys(client.app.state.runtime)
    key = keys.create(user[0])
    with client.websocket_connect(f"/ws/{key}") as socket:
        check_user_flow(exchange, socket, user, None)
        socket.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 1})
        assert receive(socket) == {"result": [key], "id": 1}
    # Expired or deleted keys: the stream says so and stops.
    other = keys.create(user[0])
    with client.websocket_connect(f"/stream?streams={other}") as socket:
        socket.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 1})
        assert receive(socket) == {"result": [other], "id": 1}
        assert hub_of(client.app.state.runtime).sink_count() >= 1
        keys.close(other)
        client.blocking_portal.call(_tick_sessions, client)
        message = receive(socket)
        assert message["stream"] == other and message["data"]["e"] == "listenKeyExpired"
        exchange.credit(user[0], "USDT", "1")
        assert_silent(socket)
    with client.websocket_connect("/ws/" + "a" * 64) as socket:
        expect_error(socket, None)
        with pytest.raises(WebSocketDisconnect):
            receive(socket)


async def _tick_sessions(client: TestClient[Any]) -> None:
    """What the sessions do every minute, now: find every open session's feed and check it."""
    import gc

    from cambist.binance.user_stream import ListenKeyFeed

    for feed in [o for o in gc.get_objects() if isinstance(o, ListenKeyFeed)]:
        if feed.runtime is client.app.state.runtime:
            await feed.check()


# ---------------------------------------------------------------------- ccxt.pro parses them


class FakeClient:
    """What ccxt.pro's handlers need of a connection: the URL and resolve/reject."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.subscriptions: dict[str, Any] = {}
        self.futures: dict[str, Any] = {}
        self.resolved: list[tuple[Any, str]] = []
        self.rejected: list[Any] = []

    def resolve(self, result: Any, message_hash: str) -> Any:
        self.resolved.append((result, message_hash))
        return result

    def reject(self, result: Any, message_hash: str | None = None) -> Any:
        self.rejected.append(result)
        return result


def ccxt_pro(symbol_upper: str, base: str) -> Any:
    import ccxt.pro

    exchange = ccxt.pro.binance({"apiKey": "k", "secret": "s", "options": {"defaultType": "spot"}})
    info = {
        "symbol": symbol_upper,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": "USDT",
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.0001", "maxQty": "9000", "stepSize": "0.0001"},
        ],
        "permissions": [],
    }
    exchange.options["crossMarginPairsData"] = []  # what fetch_markets sets (spot only here)
    exchange.options["isolatedMarginPairsData"] = []
    market = exchange.parse_market(info)
    exchange.set_markets([market])
    return exchange


def test_ccxt_pro_accepts_the_events(client: TestClient[Any], exchange: Exchange) -> None:
    symbol, lower = exchange.market()
    base = symbol.split("-")[0]
    user = exchange.user(USDT="100000", **{base: "10"})
    _, other = exchange.user(USDT="100000", **{base: "10"})
    key, secret = exchange.api_key(user[1])
    names = ["depth@100ms", "trade", "aggTrade", "kline_1m", "miniTicker", "ticker", "bookTicker"]
    with client.websocket_connect("/ws/5") as market_ws, client.websocket_connect("/ws-api/v3") as user_ws:
        subscribe(market_ws, *(f"{lower}@{n}" for n in names))
        snapshot = {"lastUpdateId": depth_sequence(client, symbol), "bids": [], "asks": []}
        assert ws_api_subscribe(user_ws, key, secret)["result"] == {"subscriptionId": 0}
        exchange.place(other, symbol=symbol, side="sell", type="limit", price="100", quantity="1")
        exchange.place(user[1], symbol=symbol, side="buy", type="limit", price="100", quantity="0.5")
        exchange.place(other, symbol=symbol, side="buy", type="limit", price="90", quantity="1")
        market_events = drain(market_ws)
        user_events = drain(user_ws)

    ex = ccxt_pro(lower.upper(), base)
    unified = ex.safe_symbol(lower.upper())
    ws_client = FakeClient("wss://example.com/ws/5")
    # The order book: the REST snapshot, then the diffs (ccxt raises on a gap).
    book = ex.order_book({})
    ex.orderbooks[unified] = book
    book.reset(ex.parse_order_book(snapshot, unified, None, "bids", "asks"))
    book["nonce"] = snapshot["lastUpdateId"]
    for event in market_events:
        ex.handle_message(ws_client, event)
    assert not ws_client.rejected, ws_client.rejected
    hashes = {h for _, h in ws_client.resolved}
    assert {f"orderbook::{unified}", f"ohlcv::{unified}::1m"} <= hashes, hashes
    for kind in ("trade", "ticker:ticker", "ticker:miniTicker", "bidask"):
        assert any(h.startswith(kind) and unified in h for h in hashes), (kind, hashes)
    assert ex.orderbooks[unified]["asks"][0][:2] == [100.0, 0.5]
    assert ex.orderbooks[unified]["bids"][0][:2] == [90.0, 1.0]
    assert ex.orderbooks[unified]["nonce"] == depth_sequence(client, symbol)
    trades = ex.trades[unified]
    assert [(t["price"], t["amount"], t["side"]) for t in trades][-1] == (100.0, 0.5, "buy")
    assert ex.ohlcvs[unified]["1m"][-1][1:6] == [100.0, 100.0, 100.0, 100.0, 0.5]
    ticker = ex.tickers[unified]
    assert ticker["last"] == 100.0 and ticker["symbol"] == unified
    assert ex.bidsasks[unified]["bid"] == 90.0 and ex.bidsasks[unified]["ask"] == 100.0

    user_client = FakeClient("wss://example.com/ws-api/v3")
    user_client.subscriptions["spot"] = True  # what ccxt's authenticate() leaves on the socket
    ex.balance["spot"] = {}  # and watch_balance
    for event in user_events:
        ex.handle_message(user_client, event)
    assert not user_client.rejected, user_client.rejected
    orders = list(ex.orders)
    assert orders and orders[-1]["status"] == "closed" and orders[-1]["filled"] == 0.5
    assert orders[-1]["symbol"] == unified and orders[-1]["side"] == "buy"
    my_trades = list(ex.myTrades)
    assert my_trades and my_trades[-1]["price"] == 100.0 and my_trades[-1]["amount"] == 0.5
    assert ex.balance["spot"]["USDT"]["free"] == pytest.approx(100000 - 50)


# ---------------------------------------------------------------------- seeding, reloads, signing


def test_tickers_and_candles_are_seeded_from_the_store(client: TestClient[Any], exchange: Exchange) -> None:
    from cambist.binance.stream_hub import BinanceStreamHub

    symbol, _ = exchange.market()
    base = symbol.split("-")[0]
    _, maker = exchange.user(**{base: "10"})
    _, taker = exchange.user(USDT="100000")
    exchange.place(maker, symbol=symbol, side="sell", type="limit", price="100", quantity="1")
    exchange.place(maker, symbol=symbol, side="sell", type="limit", price="120", quantity="1")
    exchange.place(taker, symbol=symbol, side="buy", type="market", quantity="1.5")
    # A hub started now (a restart, say) knows the last 24 h from the store's 1m klines.
    fresh = BinanceStreamHub(client.app.state.runtime)
    client.blocking_portal.call(fresh._seed)
    window = fresh._windows[symbol]
    assert (window.volume, window.count) == (150_000_000, 2)
    assert window.buckets[-1].high == 120_000_000 and window.buckets[0].open == 100_000_000
    for interval in ("1m", "1h", "1d", "1w", "1M"):
        candle = fresh._candles[(symbol, interval)]
        assert (candle.open, candle.close, candle.volume, candle.count) == (
            100_000_000,
            120_000_000,
            150_000_000,
            2,
        )
    assert fresh.seeded.is_set()


def test_a_reload_is_sent_as_one_more_contiguous_diff(client: TestClient[Any], exchange: Exchange) -> None:
    from cambist.engine.engine import DepthSnapshot
    from cambist.engine.link import MarketState

    symbol, lower = exchange.market()
    base = symbol.split("-")[0]
    _, maker = exchange.user(**{base: "10"})
    exchange.place(maker, symbol=symbol, side="sell", type="limit", price="100", quantity="1")
    runtime = client.app.state.runtime
    with client.websocket_connect("/ws/6") as socket:
        subscribe(socket, f"{lower}@depth")
        before = runtime.hub.depth(symbol)
        # The engine rebuilt its core (say, after a failed commit): the hub reloads a book that
        # differs from the last one sent, at a later sequence.
        after = DepthSnapshot(symbol, before.sequence + 3, [(99_000_000, 100_000_000)], [])
        state = MarketState(after.sequence, [], [], [after])

        def reload() -> None:
            runtime.hub.reload([], [], [after])
            hub_of(runtime).on_state(state)

        client.blocking_portal.call(reload)
        diff = receive(socket)
        assert (diff["U"], diff["u"]) == (before.sequence + 1, after.sequence)
        assert [[Decimal(p), Decimal(q)] for p, q in diff["b"]] == [[99, 1]]
        assert [[Decimal(p), Decimal(q)] for p, q in diff["a"]] == [[100, 0]]


def test_ws_api_payload_matches_the_reference_vector() -> None:
    from cambist.binance.user_stream import ws_api_payload

    params = {"timestamp": 1700000000000, "apiKey": "test-api-key", "recvWindow": 10000, "signature": "x"}
    payload = ws_api_payload(params)
    assert payload == b"apiKey=test-api-key&recvWindow=10000&timestamp=1700000000000"
    signature = hmac.new(b"test-secret", payload, hashlib.sha256).hexdigest()
    assert signature.startswith("745d2905") and signature.endswith("7b54e53")


def test_a_slow_client_is_closed_with_1013(
    client: TestClient[Any], exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cambist.stream import connection as connection_module

    symbol, lower = exchange.market()
    base = symbol.split("-")[0]
    _, maker = exchange.user(**{base: "10"})
    hub = hub_of(client.app.state.runtime)
    monkeypatch.setattr(connection_module, "SEND_QUEUE_MAX", 1)
    with client.websocket_connect("/ws/8") as slow:
        subscribe(slow, f"{lower}@depth", f"{lower}@depth@100ms")  # the queue holds one frame
        monkeypatch.setattr(connection_module, "SEND_QUEUE_MAX", 1000)
        subscribed = hub.sink_count()
        # One batch, two frames at once: the second overflows the queue.
        exchange.place(maker, symbol=symbol, side="sell", type="limit", price="100", quantity="1")
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                receive(slow)
        assert closed.value.code == 1013
        assert hub.sink_count() == subscribed - 2


def test_connections_per_ip_are_limited_with_the_native_counter(
    client: TestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cambist.binance import user_stream as user_stream_module

    monkeypatch.setattr(user_stream_module, "MAX_CONNECTIONS_PER_IP", 1)
    counts = client.app.state.runtime.ws_connections
    with client.websocket_connect("/ws/9") as first:
        subscribe(first, "!ticker@arr")
        assert sum(counts.values()) == 1
        with client.websocket_connect("/ws-api/v3") as second, pytest.raises(WebSocketDisconnect) as closed:
            receive(second)
        assert closed.value.code == 1008
