"""The distributed deployment under failure, with the real processes and servers.

- SIGKILL the engine in the middle of a stream of orders sent through two gateways, restart
  it: every acknowledged order is there, nothing is applied twice, money is conserved, the
  journal replays to the stored state, and a WebSocket that stayed connected to a gateway
  through it all still holds the exact order book.
- Restart Redis (a private redis-server, so the machine's own is left alone): the gateways
  and the engine reconnect by themselves and trading resumes.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.support import API, cli, expect, free_port
from e2e.test_crash import (
    REQUEST_TIMEOUT_S,
    STREAM_TIMEOUT_S,
    Phases,
    check_book,
    check_conservation,
    check_every_order,
    check_nothing_twice,
    resolve_by_retry,
    setup_users,
    trade,
    wait_for_first_acks,
)

from .support import Cluster
from .test_cluster import SYMBOL, book_of, on, rest_book, traders, wait_until_status, websocket

pytestmark = [pytest.mark.postgres, pytest.mark.crash, pytest.mark.timeout(300)]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture
def seed() -> int:
    value = int(os.environ.get("CAMBIST_TEST_SEED") or random.randrange(2**31))
    print(f"distributed crash test seed: CAMBIST_TEST_SEED={value}")
    return value


@pytest.fixture
def cluster(tmp_path: Path, fresh_postgres_url: Any, redis_url: str) -> Iterator[Cluster]:
    running = Cluster(tmp_path / "cluster", fresh_postgres_url(), redis_url, gateways=2)
    try:
        yield running
    except BaseException:
        print(running.logs())
        raise
    finally:
        running.close()


async def test_nothing_acknowledged_is_lost_when_the_engine_is_killed(cluster: Cluster, seed: int) -> None:
    clock = Phases()
    await asyncio.to_thread(cluster.start)
    clock("cluster ready")
    url_a, url_b = cluster.urls
    async with httpx.AsyncClient(base_url=url_a, timeout=REQUEST_TIMEOUT_S) as client:
        people = await setup_users(client, cluster.database_url)
    clock("users funded")

    async with websocket(url_b) as watcher:
        await watcher.send({"op": "subscribe", "channels": [f"orderbook:{SYMBOL}"]})
        await watcher.wait_for(on(f"orderbook:{SYMBOL}", "snapshot"))

        rng = random.Random(seed)
        kill_after_s = rng.uniform(0.5, 2.0)
        stop = asyncio.Event()
        streams = [
            asyncio.create_task(trade(cluster.urls[t.index % 2], t, random.Random(f"{seed}-{t.index}"), stop))
            for t in people
        ]
        await wait_for_first_acks(people, streams)
        await asyncio.sleep(kill_after_s)
        assert not any(s.done() for s in streams), [s.exception() for s in streams if s.done()]
        await asyncio.to_thread(cluster.engine.kill)
        # The gateways stay up: every stream ends on a 503 (unknown or refused), not a dead socket.
        stopped = await asyncio.wait_for(asyncio.gather(*streams), STREAM_TIMEOUT_S)
        stop.set()
        assert all(stopped)
        placed = [p for t in people for p in t.placed]
        acked = [p for p in placed if p.acked]
        refused = [p for p in placed if p.status_code == 503]
        print(
            f"engine killed after {kill_after_s:.2f} s: {len(placed)} orders sent, {len(acked)} acked, "
            f"{len(refused)} answered 503, {sum(p.status_code is None for p in placed)} unanswered"
        )
        assert len(acked) >= len(people)
        assert all(p.status_code is not None for p in placed), "a gateway dropped a connection"
        clock("engine killed")

        await asyncio.to_thread(cluster.engine.start)
        await asyncio.to_thread(cluster.engine.wait_ready)
        async with (
            httpx.AsyncClient(base_url=url_a, timeout=REQUEST_TIMEOUT_S) as a,
            httpx.AsyncClient(base_url=url_b, timeout=REQUEST_TIMEOUT_S) as b,
        ):
            await wait_until_status(a, "/ready", 200, timeout_s=15)
            await wait_until_status(b, "/ready", 200, timeout_s=15)
            clock("engine restarted")
            unanswered = await check_every_order(b, people)
            applied = await resolve_by_retry(a, unanswered)
            print(f"  of {len(unanswered)} orders answered 503, {applied} had been applied before the kill")
            check_nothing_twice(cluster.database_url, people)
            await check_conservation(b, people, cluster.database_url, fees_expected=False)
            await check_book(a, people)
            await check_book(b, people)
            clock("orders checked")

            # The socket on B never closed: its book, kept from updates alone, is exact.
            await watcher.drain(quiet_s=1.0)
            book = book_of(watcher)
            assert (book.bids, book.asks) == await rest_book(b)

    verified = await asyncio.to_thread(cli, cluster.env, "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ok:"), verified.stdout + verified.stderr
    clock("verified")


# -- Redis restart -------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of the test's own on a free port, killed and restarted at will."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            reason = "redis-server is not installed (needed to restart a Redis of the test's own)"
            if _in_ci():
                pytest.fail(reason + "; CI=true requires it")
            pytest.skip(reason)
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [*args, "--dir", str(self.directory)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_gateways_and_engine_recover_when_redis_restarts(
    tmp_path: Path, fresh_postgres_url: Any, private_redis: PrivateRedis
) -> None:
    cluster = Cluster(tmp_path / "cluster", fresh_postgres_url(), private_redis.url, gateways=2)
    try:
        await asyncio.to_thread(cluster.start)
        url_a, url_b = cluster.urls
        async with (
            httpx.AsyncClient(base_url=url_a, timeout=15) as a,
            httpx.AsyncClient(base_url=url_b, timeout=15) as b,
            websocket(url_b) as watcher,
        ):
            seller, buyer = await traders(cluster, a)
            await watcher.send({"op": "subscribe", "channels": [f"orderbook:{SYMBOL}", f"trades:{SYMBOL}"]})
            await watcher.wait_for(on(f"orderbook:{SYMBOL}", "snapshot"))
            sell = {"symbol": SYMBOL, "side": "sell", "type": "limit", "price": "52000", "quantity": "0.002"}
            expect(await a.post(f"{API}/orders", json=sell, headers=seller.headers), 201)

            await asyncio.to_thread(private_redis.kill)
            await wait_until_status(a, "/ready", 503, timeout_s=10)
            await wait_until_status(b, "/ready", 503, timeout_s=10)
            response = await b.post(f"{API}/orders", json=dict(sell, side="buy"), headers=buyer.headers)
            assert response.status_code == 503, response.text
            # Sessions and reads live in PostgreSQL: the gateways still serve them.
            expect(await b.get(f"{API}/account/balances", headers=buyer.headers), 200)

            await asyncio.to_thread(private_redis.start)
            await wait_until_status(a, "/ready", 200, timeout_s=20)
            await wait_until_status(b, "/ready", 200, timeout_s=20)
            # Commands flow again through both gateways, and B's socket sees the trade.
            half = dict(sell, side="buy", quantity="0.001")
            for client in (a, b):
                taken = expect(await client.post(f"{API}/orders", json=half, headers=buyer.headers), 201)
                assert taken["status"] == "filled", taken
                await watcher.wait_for(on(f"trades:{SYMBOL}", tradeId=taken["fills"][0]["tradeId"]), 15)
            await watcher.drain(quiet_s=1.0)
            book = book_of(watcher)
            assert (book.bids, book.asks) == await rest_book(b)
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.close()
