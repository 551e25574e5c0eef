"""A lean HTTP/1.1 keep-alive load client for the benchmarks: asyncio streams, no HTTP library.

Why not httpx: on our 2-core machine the server under test needs one core and PostgreSQL part
of the other, so the load generator must cost a few microseconds per request, not a few
hundred. Requests are pre-encoded bytes; a response is read as a status line, headers up to
the blank line, and a ``Content-Length`` body (a chunked body is handled too, for safety, but
Litestar on granian always sends a length). One connection carries one request at a time
(closed loop, no pipelining), like a trading bot waiting for each acknowledgement.

    conn = await HttpConnection.open("127.0.0.1", 8000)
    status, body = await conn.request(build_request("GET", "/health", "127.0.0.1:8000"))

Run directly it measures its own ceiling against a trivial in-process echo server:

    .venv/bin/python bench/load_client.py --selftest
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

HEADER_END = b"\r\n\r\n"
HEADERS_BYTES_MAX = 64 * 1024
STREAM_LIMIT_BYTES = 4 * 1024 * 1024  # bounded: a bigger response is an error, not a hang


class HttpError(Exception):
    """The peer answered something that is not an HTTP/1.1 response we can read."""


def build_request(
    method: str,
    path: str,
    host: str,
    *,
    body: bytes | None = None,
    headers: Iterable[tuple[str, str]] = (),
    content_type: str = "application/json",
) -> bytes:
    """Encode one complete request (head and body) once, to be written many times."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body is not None:
        lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body is not None else head


class HttpConnection:
    """One keep-alive connection; ``request`` is not safe to call concurrently on it."""

    __slots__ = ("_reader", "_writer", "host", "port")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        connection = cls(host, port)
        await connection.connect()
        return connection

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, limit=STREAM_LIMIT_BYTES
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send pre-encoded request bytes, return (status, body).

        A closed connection is reopened before the next request, never retried behind the
        caller's back: a POST that may have reached the server must count as an error, not
        be placed twice.
        """
        if self._writer is None:
            await self.connect()
        try:
            return await self._exchange(data)
        except BaseException:
            self.close()
            raise

    async def _exchange(self, data: bytes) -> tuple[int, bytes]:
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        writer.write(data)
        head = await reader.readuntil(HEADER_END)
        if len(head) > HEADERS_BYTES_MAX or not head.startswith(b"HTTP/1."):
            raise HttpError(f"not an HTTP/1.x response: {head[:60]!r}")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 17)
            length = int(lower[at + 17 : end])
            body = await reader.readexactly(length) if length else b""
        elif b"\r\ntransfer-encoding: chunked" in lower:
            body = await self._read_chunked(reader)
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # no length: the body runs to the end of the connection
            body = await reader.read()
            self.close()
            return status, body
        if b"\r\nconnection: close" in lower:
            self.close()
        return status, body

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected: the final blank line
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)


# ---------------------------------------------------------------------------- statistics


@dataclass(slots=True)
class Stats:
    """Latencies (ns) of the requests that got the expected status, and every status seen."""

    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # unexpected status or exception name

    def merge(self, other: Stats) -> None:
        self.latencies_ns.extend(other.latencies_ns)
        self.statuses.update(other.statuses)
        self.errors.update(other.errors)

    @property
    def ok(self) -> int:
        return len(self.latencies_ns)

    def percentile_ms(self, fraction: float) -> float:
        return percentile_ms(sorted(self.latencies_ns), fraction)


def percentile_ms(sorted_ns: Sequence[int], fraction: float) -> float:
    """Nearest-rank percentile of sorted nanosecond samples, in milliseconds (nan if none)."""
    if not sorted_ns:
        return float("nan")
    rank = min(len(sorted_ns) - 1, max(0, round(fraction * len(sorted_ns)) - 1))
    return sorted_ns[rank] / 1e6


async def run_closed_loop(
    connections: Sequence[HttpConnection],
    next_request: Callable[[int], bytes],
    expected_status: int,
    duration_s: float,
    *,
    on_response: Callable[[int, int, bytes], Awaitable[None] | None] | None = None,
) -> tuple[Stats, float]:
    """Each connection sends ``next_request(i)`` back to back until ``duration_s`` elapses.

    Returns the merged stats and the measured wall time (first send to last answer).
    """
    deadline = time.perf_counter() + duration_s
    clock = time.perf_counter_ns

    async def client(index: int, connection: HttpConnection) -> Stats:
        stats = Stats()
        latencies = stats.latencies_ns
        while time.perf_counter() < deadline:
            data = next_request(index)
            started = clock()
            try:
                status, body = await connection.request(data)
            except Exception as error:  # counted, never fatal: a benchmark reports failures
                stats.errors[type(error).__name__] += 1
                connection.close()
                await asyncio.sleep(0.01)
                continue
            elapsed = clock() - started
            stats.statuses[str(status)] += 1
            if status == expected_status:
                latencies.append(elapsed)
            else:
                stats.errors[str(status)] += 1
            if on_response is not None:
                result = on_response(index, status, body)
                if result is not None:
                    await result
        return stats

    started = time.perf_counter()
    results = await asyncio.gather(*(client(i, c) for i, c in enumerate(connections)))
    wall_s = time.perf_counter() - started
    total = Stats()
    for stats in results:
        total.merge(stats)
    return total, wall_s


async def open_connections(host: str, port: int, count: int) -> list[HttpConnection]:
    return list(await asyncio.gather(*(HttpConnection.open(host, port) for _ in range(count))))


def install_uvloop() -> str:
    """Use uvloop when it is installed; returns the loop's name for the report."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return f"uvloop {uvloop.__version__}"


def process_cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc; 0.0 elsewhere."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15)


# ---------------------------------------------------------------------------- self test

_CANNED = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{"status":"ok"}'


class _CannedProtocol(asyncio.Protocol):
    """The cheapest possible server: one canned answer per request head received."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(HEADER_END)
        if count:
            self.buffer = self.buffer.rsplit(HEADER_END, 1)[1]
            self.transport.write(_CANNED * count)  # type: ignore[attr-defined]


def _serve_canned(port: int) -> None:
    install_uvloop()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_CannedProtocol, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


async def _selftest(port: int, clients: int, duration_s: float) -> None:
    connections = await open_connections("127.0.0.1", port, clients)
    request = build_request("GET", "/health", f"127.0.0.1:{port}")
    cpu0 = process_cpu_s()
    stats, wall_s = await run_closed_loop(connections, lambda _i: request, 200, duration_s)
    cpu_s = process_cpu_s() - cpu0
    print(
        f"load client ceiling: {clients} connections, {stats.ok / wall_s:,.0f} req/s, "
        f"p50 {stats.percentile_ms(0.5):.3f} ms, client CPU {100 * cpu_s / wall_s:.0f}% of one core, "
        f"{1e6 * cpu_s / max(stats.ok, 1):.1f} us CPU per request, errors {dict(stats.errors) or 0}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--selftest", action="store_true", help="measure the client against a canned server")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if not args.selftest:
        parser.print_help()
        return
    import multiprocessing
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = multiprocessing.Process(target=_serve_canned, args=(port,), daemon=True)
    server.start()
    try:
        time.sleep(0.5)
        print(f"loop: {install_uvloop()}")
        asyncio.run(_selftest(port, args.clients, args.seconds))
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
