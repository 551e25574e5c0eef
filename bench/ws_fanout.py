"""WebSocket fan-out benchmark: trade-to-client latency with many `trades:BTC-USDT` subscribers.

Starts ``cambist serve --no-demo`` on SQLite in a temp dir (same helpers as ``http_bench.py``),
connects N subscribers to ``/ws`` and subscribes each to ``trades:BTC-USDT``, then has two
traders cross at a steady rate over HTTP: the maker posts a GTC sell, the taker an IOC buy of
the same price and quantity, so each cycle makes exactly one trade, whose ``tradeId`` comes
back in the taker's 201 (``fills``). For every trade it records when the taker got its 201,
the trade's server ``time`` (ms) and when each subscriber received the frame, matched by
``tradeId``. It prints messages delivered per second, latency percentiles from the HTTP answer
and from ``time``, missing messages, dropped connections, CPU per process and the machine.

The subscribers are a minimal RFC 6455 client (asyncio ``Protocol``, no library): one
timestamp per received chunk, the ``tradeId`` read with a byte search, so the client costs a
few microseconds per message on a 2-core machine where the server needs the other core. The
server allows 50 connections per client IP (the peer address): subscriber i binds its socket
to 127.0.0.(2 + i // 40) -- all of 127/8 is loopback on Linux.

    .venv/bin/python bench/ws_fanout.py                # 1,000 subscribers, 50 trades/s, 10 s
    .venv/bin/python bench/ws_fanout.py --quick        # 100 subscribers, 5 s
        [--subscribers N] [--rate TRADES_PER_S] [--duration S]
        [--profile DIR]    # py-spy the server worker while trading, print where GIL time goes
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import (
    HOST,
    SYMBOL,
    Profiler,
    Trader,
    call,
    children,
    json_request,
    machine_info,
    running_server,
    setup_traders,
    sqlite_backend,
    summarize_profile,
    wait_ready,
)
from load_client import HttpConnection, install_uvloop, percentile_ms, process_cpu_s

CHANNEL = f"trades:{SYMBOL}"
PER_IP = 40  # under the server's 50 connections per client IP
CONNECT_BATCH = 50
PRICE = "30000.00"
QUANTITY = "0.0010"
TRADE_ID_KEY = b'"tradeId":'
SETTLE_S = 2.0  # after the last trade: time for the last frames to arrive


def _masked_text(text: str) -> bytes:
    """One client-to-server text frame (clients must mask; small payloads only)."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


@dataclass(slots=True)
class Totals:
    arrivals: dict[int, list[int]] = field(default_factory=dict)  # tradeId -> wall ns per frame
    frames: int = 0
    dropped: int = 0
    close_codes: dict[int, int] = field(default_factory=dict)


class Subscriber(asyncio.Protocol):
    """Handshake, subscribe, then read server frames (never masked) until closed."""

    def __init__(self, port: int, totals: Totals) -> None:
        self.port = port
        self.totals = totals
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closing = False  # we closed it: not a drop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self._fail(RuntimeError(f"no upgrade: {bytes(buffer[:80])!r}"))
                return
            del buffer[: end + 4]
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(_masked_text(json.dumps({"op": "subscribe", "channels": [CHANNEL]})))
        totals = self.totals
        at = 0
        size = len(buffer)
        while size - at >= 2:
            opcode = buffer[at] & 0x0F
            length = buffer[at + 1] & 0x7F
            head = 2
            if length == 126:
                if size - at < 4:
                    break
                length = struct.unpack_from("!H", buffer, at + 2)[0]
                head = 4
            elif length == 127:
                if size - at < 10:
                    break
                length = struct.unpack_from("!Q", buffer, at + 2)[0]
                head = 10
            if size - at < head + length:
                break
            start, stop = at + head, at + head + length
            at = stop
            if opcode == 1:
                key = buffer.find(TRADE_ID_KEY, start, stop)
                if key >= 0:
                    comma = buffer.find(b",", key, stop)
                    trade_id = int(buffer[key + len(TRADE_ID_KEY) : comma])
                    totals.frames += 1
                    arrivals = totals.arrivals.get(trade_id)
                    if arrivals is None:
                        arrivals = totals.arrivals[trade_id] = []
                    arrivals.append(now)
                elif not self.ready.done():
                    text = bytes(buffer[start:stop])
                    if b'"subscribed"' in text:
                        self.ready.set_result(None)
                    elif b'"error"' in text:
                        self._fail(RuntimeError(text.decode(errors="replace")))
            elif opcode == 8:
                code = struct.unpack_from("!H", buffer, start)[0] if length >= 2 else 1005
                totals.close_codes[code] = totals.close_codes.get(code, 0) + 1
            elif opcode == 9 and self.transport is not None:  # ping: answer with a masked pong
                payload = bytes(buffer[start:stop])
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
        del buffer[:at]

    def _fail(self, error: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.totals.dropped += 1
        self._fail(ConnectionError(f"closed before subscribing: {exc}"))

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


async def connect_subscribers(port: int, count: int, totals: Totals) -> list[Subscriber]:
    loop = asyncio.get_running_loop()
    subscribers: list[Subscriber] = []

    async def one(index: int) -> Subscriber:
        local = f"127.0.0.{2 + index // PER_IP}"
        _, protocol = await loop.create_connection(
            lambda: Subscriber(port, totals), HOST, port, local_addr=(local, 0)
        )
        await asyncio.wait_for(protocol.ready, 30)
        return protocol

    for first in range(0, count, CONNECT_BATCH):
        batch = range(first, min(count, first + CONNECT_BATCH))
        subscribers.extend(await asyncio.gather(*(one(i) for i in batch)))
    return subscribers


@dataclass(slots=True)
class Trades:
    http_ns: dict[int, int] = field(default_factory=dict)  # tradeId -> wall ns of the taker's 201
    time_ms: dict[int, int] = field(default_factory=dict)  # tradeId -> the trade's server time
    late_cycles: int = 0
    errors: int = 0


async def trade_loop(port: int, traders: list[Trader], rate: float, duration_s: float) -> Trades:
    maker, taker = traders
    host = f"{HOST}:{port}"
    sell = json_request(
        "POST", "/api/v1/orders", host,
        {"symbol": SYMBOL, "side": "sell", "type": "limit", "timeInForce": "GTC", "price": PRICE,
         "quantity": QUANTITY},
        maker.token,
    )  # fmt: skip
    buy = json_request(
        "POST", "/api/v1/orders", host,
        {"symbol": SYMBOL, "side": "buy", "type": "limit", "timeInForce": "IOC", "price": PRICE,
         "quantity": QUANTITY},
        taker.token,
    )  # fmt: skip
    maker_conn = await HttpConnection.open(HOST, port)
    taker_conn = await HttpConnection.open(HOST, port)
    result = Trades()
    interval = 1.0 / rate
    cycles = round(rate * duration_s)
    start = time.monotonic()
    for cycle in range(cycles):
        due = start + cycle * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -interval:
            result.late_cycles += 1
        try:
            await call(maker_conn, sell, 201)
            answer = await call(taker_conn, buy, 201)
        except (RuntimeError, OSError, asyncio.IncompleteReadError):
            result.errors += 1
            continue
        now = time.time_ns()
        for fill in answer.get("fills", []):
            result.http_ns[fill["tradeId"]] = now
            result.time_ms[fill["tradeId"]] = fill["time"]
    maker_conn.close()
    taker_conn.close()
    return result


def pct(values: list[int]) -> str:
    values.sort()
    return " / ".join(f"{percentile_ms(values, f):.2f}" for f in (0.5, 0.9, 0.99)) + (
        f" / max {values[-1] / 1e6:.2f}" if values else ""
    )


async def run(args: argparse.Namespace, loop_name: str) -> None:
    load = os.getloadavg()
    with sqlite_backend() as (url, data_dir):
        server_args = argparse.Namespace(switch_interval_ms=None, relaxed_durability=False)
        with running_server(data_dir, url, server_args) as (port, server, log_path):
            await wait_ready(port, server, log_path)
            server_pids = [server.pid, *children(server.pid)]
            traders = await setup_traders(port, 2, f"ws{os.getpid()}")
            totals = Totals()
            began = time.monotonic()
            subscribers = await connect_subscribers(port, args.subscribers, totals)
            connect_s = time.monotonic() - began
            await asyncio.sleep(0.5)
            cpu_server0 = sum(process_cpu_s(p) for p in server_pids)
            cpu_client0 = process_cpu_s()
            profiler = Profiler(args.profile, "ws_fanout")
            profiler.start(server_pids[-1], args.duration)
            wall0 = time.monotonic()
            trades = await trade_loop(port, traders, args.rate, args.duration)
            trading_s = time.monotonic() - wall0
            profiler.stop()
            await asyncio.sleep(SETTLE_S)
            wall = time.monotonic() - wall0
            cpu_server = sum(process_cpu_s(p) for p in server_pids) - cpu_server0
            cpu_client = process_cpu_s() - cpu_client0
            alive = sum(1 for s in subscribers if s.transport is not None and not s.transport.is_closing())
            times_ms = trades.time_ms
            for subscriber in subscribers:
                subscriber.close()
            await asyncio.sleep(0.2)

    from_http: list[int] = []
    from_time: list[int] = []
    matched = 0
    spread: list[int] = []  # per trade: last arrival - first arrival (the fan-out's own length)
    for trade_id, http_ns in trades.http_ns.items():
        arrivals = totals.arrivals.get(trade_id, [])
        matched += len(arrivals)
        if arrivals:
            spread.append(max(arrivals) - min(arrivals))
        from_http.extend(a - http_ns for a in arrivals)
        server_ms = times_ms.get(trade_id)
        if server_ms is not None:
            from_time.extend(a - server_ms * 1_000_000 for a in arrivals)
    expected = len(trades.http_ns) * args.subscribers
    print(f"ws fan-out bench: {args.subscribers} subscribers on {CHANNEL}, target {args.rate:g} trades/s "
          f"for {args.duration:g} s, SQLite (durable)")  # fmt: skip
    for line in machine_info(loop_name, load, None, False):
        print(line)
    print(f"connect + subscribe: {args.subscribers} in {connect_s:.2f} s "
          f"({-(-args.subscribers // PER_IP)} source addresses)")  # fmt: skip
    print(f"trades: {len(trades.http_ns)} in {trading_s:.2f} s = {len(trades.http_ns) / trading_s:.1f}/s "
          f"(late cycles {trades.late_cycles}, HTTP errors {trades.errors})")  # fmt: skip
    print(f"messages delivered: {matched} of {expected} expected "
          f"({expected - matched} missing), {matched / trading_s:,.0f}/s over the trading window")  # fmt: skip
    print(f"latency ms after the taker's 201, p50 / p90 / p99: {pct(from_http)} (n={len(from_http)})")
    print(f"latency ms after the trade's time field (ms resolution), p50 / p90 / p99: {pct(from_time)} "
          f"(n={len(from_time)})")  # fmt: skip
    print(f"fan-out spread per trade (last - first subscriber) ms, p50 / p90 / p99: {pct(spread)}")
    print(f"dropped connections: {totals.dropped} (close codes {totals.close_codes or 'none'}), "
          f"alive at the end {alive}")  # fmt: skip
    print(f"CPU over {wall:.1f} s (trading + {SETTLE_S:g} s settle), % of one core: "
          f"server {100 * cpu_server / wall:.0f}, bench client {100 * cpu_client / wall:.0f}; "
          f"server CPU per delivered message {1e6 * cpu_server / max(matched, 1):.0f} us "
          f"(orders included)")  # fmt: skip
    if args.profile is not None:
        print(f"py-spy of the server worker (GIL holder) during trading, {args.profile / 'ws_fanout.txt'}:")
        for line in summarize_profile(args.profile / "ws_fanout.txt"):
            print(f"  {line}")
    target = "MET" if from_http and percentile_ms(sorted(from_http), 0.99) < 50 else "NOT met"
    print(f"target p99 < 50 ms (from the 201): {target}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100 subscribers, 5 s")
    parser.add_argument("--subscribers", type=int)
    parser.add_argument("--rate", type=float, default=50.0, help="trades per second")
    parser.add_argument("--duration", type=float)
    parser.add_argument("--profile", type=Path, help="py-spy the server while trading, into DIR")
    args = parser.parse_args()
    if args.subscribers is None:
        args.subscribers = 100 if args.quick else 1000
    if args.duration is None:
        args.duration = 5.0 if args.quick else 10.0
    if args.subscribers > PER_IP * 253:
        parser.error(f"at most {PER_IP * 253} subscribers (127.0.0.2-254)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):  # the server inherits it
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    loop_name = install_uvloop()
    asyncio.run(run(args, loop_name))


if __name__ == "__main__":
    main()
