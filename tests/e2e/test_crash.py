"""SIGKILL the real server in the middle of an order stream, restart it on the same data, and
check what "Nothing lost" promises (docs: reliability.md):

- every acknowledged (2xx) order exists, at least as advanced as it was acknowledged, and an
  acknowledged cancel stays canceled;
- an order whose request got no answer is absent or fully applied, and a retry with the same
  clientOrderId resolves it (the same order back, or placed once now);
- a rejected (4xx) order is absent; nothing is applied twice (one row per clientOrderId);
- money is conserved: the users' balances plus the fee account equal the credits, and
  ``cambist verify`` (journal replay vs the stored state) passes;
- the public order book equals the aggregation of every user's open orders;
- klines stay correct across the restart: each 1m bucket matches the public trades of its minute.

Runs on SQLite and on PostgreSQL. ``CAMBIST_TEST_SEED`` reproduces a run's order stream and kill
time (the interleaving of concurrent requests is the machine's); the seed is printed.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from cambist.store.base import create_db_engine
from cambist.store.models_accounts import User as UserRow
from cambist.store.models_trading import BalanceRow, OrderRow, table_of

from .support import API, ServerProcess, auth, cli, expect, paged, server_env

pytestmark = [pytest.mark.crash, pytest.mark.timeout(180)]

SYMBOL = "BTC-USDT"
TRADERS = 4
PASSWORD = "crash-test-password-1"
CREDITS = {"BTC": Decimal("10"), "USDT": Decimal("1000000")}
SCALES = {"BTC": 8, "USDT": 6}
FEE_ACCOUNT = -1
OPEN = {"new", "partially_filled"}
FINAL = {"filled", "canceled", "expired", "rejected"}
MAX_REQUESTS_PER_TRADER = 5_000  # the kill comes long before
REQUEST_TIMEOUT_S = 10.0
STREAM_TIMEOUT_S = 30.0
READ_CONCURRENCY = 16


@dataclass
class Placed:
    client_order_id: str
    body: dict[str, Any]
    status_code: int | None = None  # None: no answer (connection lost)
    acked: dict[str, Any] | None = None  # the 2xx answer
    cancel_sent: bool = False
    cancel_ack: dict[str, Any] | None = None  # the 200 answer to DELETE


@dataclass
class Trader:
    index: int
    email: str
    user_id: int = 0
    token: str = ""
    placed: list[Placed] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.token)


@dataclass
class Backend:
    env: dict[str, str]
    database_url: str


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/cambist.db"
    else:
        url = request.getfixturevalue("fresh_postgres_url")()
    return Backend(server_env(tmp_path, url), url)


@pytest.fixture
def server(backend: Backend, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(backend.env, tmp_path / "server.log")
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
def seed() -> int:
    value = int(os.environ.get("CAMBIST_TEST_SEED") or secrets.randbelow(2**31))
    print(f"crash test seed: CAMBIST_TEST_SEED={value}")
    return value


# -- the order stream ----------------------------------------------------------------------------


def order_body(rng: random.Random, client_order_id: str) -> dict[str, Any]:
    """A limit order around 50,000 that crosses or rests; at least 5 USDT notional."""
    price = Decimal(50_000) + rng.randint(-5, 5) * Decimal(10)
    quantity = Decimal(rng.randint(2, 30)) * Decimal("0.0001")
    return {
        "symbol": SYMBOL,
        "side": rng.choice(("buy", "sell")),
        "type": "limit",
        "price": f"{price:.2f}",
        "quantity": f"{quantity:.4f}",
        "clientOrderId": client_order_id,
    }


async def trade(base_url: str, trader: Trader, rng: random.Random, stop: asyncio.Event) -> bool:
    """Place and cancel as fast as answers come until the server dies; record every answer.

    Returns True when it stopped because the server went away (as it must in this test).
    """
    async with httpx.AsyncClient(
        base_url=base_url, headers=trader.headers, timeout=REQUEST_TIMEOUT_S
    ) as client:
        for n in range(MAX_REQUESTS_PER_TRADER):
            if stop.is_set():
                return True
            cancelable = [
                p for p in trader.placed if p.acked and p.acked["status"] in OPEN and not p.cancel_sent
            ]
            if cancelable and rng.random() < 0.25:
                target = rng.choice(cancelable)
                target.cancel_sent = True
                try:
                    response = await client.delete(f"{API}/orders/{target.acked['orderId']}")  # type: ignore[index]
                except httpx.HTTPError:
                    return True
                if response.status_code >= 500:
                    return True
                assert response.status_code == 200, response.text
                target.cancel_ack = response.json()
                assert target.cancel_ack["status"] in FINAL, target.cancel_ack
                continue
            placed = Placed(f"t{trader.index}-{n}", order_body(rng, f"t{trader.index}-{n}"))
            trader.placed.append(placed)
            try:
                response = await client.post(f"{API}/orders", json=placed.body)
            except httpx.HTTPError:
                return True  # no answer: absent or applied, resolved after the restart
            placed.status_code = response.status_code
            if response.status_code >= 500:
                return True
            if response.is_success:
                placed.acked = response.json()
    return False


async def wait_for_first_acks(traders: list[Trader], streams: list[asyncio.Task[bool]]) -> None:
    """Until every trader has an acknowledged order (bounded), so the kill lands mid-stream
    even when a loaded machine is slow to serve the first requests."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_TIMEOUT_S
    while not all(any(p.acked for p in t.placed) for t in traders):
        assert loop.time() < deadline, "no acknowledged orders"
        assert not any(s.done() for s in streams), [s.exception() for s in streams if s.done()]
        await asyncio.sleep(0.02)


# -- checks after the restart --------------------------------------------------------------------


def as_advanced(acked: dict[str, Any], now: dict[str, Any]) -> bool:
    """Is ``now`` the acknowledged state or a later one of the same order?"""
    if now["orderId"] != acked["orderId"]:
        return False
    if acked["status"] in FINAL:
        return now["status"] == acked["status"] and now["filledQuantity"] == acked["filledQuantity"]
    if acked["status"] == "partially_filled" and now["status"] == "new":
        return False
    return Decimal(now["filledQuantity"]) >= Decimal(acked["filledQuantity"])


async def fetch_by_client_id(client: httpx.AsyncClient, trader: Trader, client_order_id: str) -> Any:
    response = await client.get(
        f"{API}/orders", params={"clientOrderId": client_order_id}, headers=trader.headers
    )
    if response.status_code == 404:
        return None
    order = expect(response, 200)
    filled = sum((Decimal(f["quantity"]) for f in order["fills"]), Decimal(0))
    assert filled == Decimal(order["filledQuantity"]), f"order and its fills disagree: {order}"
    return order


async def check_every_order(client: httpx.AsyncClient, traders: list[Trader]) -> list[tuple[Trader, Placed]]:
    """Acknowledged ones are there and at least as advanced; rejected ones are absent.
    Returns the unanswered ones, for the retry."""
    limit = asyncio.Semaphore(READ_CONCURRENCY)
    problems: list[str] = []
    unanswered: list[tuple[Trader, Placed]] = []

    async def check(trader: Trader, placed: Placed) -> None:
        async with limit:
            now = await fetch_by_client_id(client, trader, placed.client_order_id)
        if placed.acked is not None:
            if now is None:
                problems.append(f"acknowledged order {placed.client_order_id} is lost")
            elif not as_advanced(placed.acked, now):
                problems.append(f"{placed.client_order_id} went back: acked {placed.acked} now {now}")
            elif placed.cancel_ack is not None and not as_advanced(placed.cancel_ack, now):
                problems.append(f"{placed.client_order_id} cancel lost: {placed.cancel_ack} now {now}")
        elif placed.status_code is not None and placed.status_code < 500:  # rejected: no change
            if now is not None:
                problems.append(f"rejected order {placed.client_order_id} exists: {now}")
        else:
            unanswered.append((trader, placed))

    await asyncio.gather(*(check(t, p) for t in traders for p in t.placed))
    assert problems == [], "\n".join(problems[:20])
    return unanswered


async def resolve_by_retry(client: httpx.AsyncClient, unanswered: list[tuple[Trader, Placed]]) -> int:
    """Retrying an unanswered order with its clientOrderId gives the order it became, or
    places it now if it was absent; either way exactly once. Returns how many were applied
    before the kill."""
    applied = 0
    for trader, placed in unanswered:
        before = await fetch_by_client_id(client, trader, placed.client_order_id)
        response = await client.post(f"{API}/orders", json=placed.body, headers=trader.headers)
        answer = expect(response, 200, 201)
        if before is not None:
            applied += 1
            assert answer["orderId"] == before["orderId"], (before, answer)
        after = await fetch_by_client_id(client, trader, placed.client_order_id)
        assert after is not None and after["orderId"] == answer["orderId"]
    return applied


def check_nothing_twice(database_url: str, traders: list[Trader]) -> None:
    orders = table_of(OrderRow)
    db = create_db_engine(database_url)
    try:
        with db.connect() as conn:
            repeated = conn.execute(
                select(orders.c.account_id, orders.c.client_order_id, func.count())
                .where(orders.c.client_order_id.is_not(None))
                .group_by(orders.c.account_id, orders.c.client_order_id)
                .having(func.count() > 1)
            ).all()
            stored = {
                (row.account_id, row.client_order_id)
                for row in conn.execute(
                    select(orders.c.account_id, orders.c.client_order_id).where(
                        orders.c.client_order_id.is_not(None)
                    )
                )
            }
    finally:
        db.dispose()
    assert repeated == [], f"applied twice: {repeated[:10]}"
    sent = {(t.user_id, p.client_order_id) for t in traders for p in t.placed}
    assert stored <= sent, f"orders nobody sent: {sorted(stored - sent)[:10]}"


def system_balances(database_url: str, account_id: int) -> dict[str, Decimal]:
    balances = table_of(BalanceRow)
    db = create_db_engine(database_url)
    try:
        with db.connect() as conn:
            rows = conn.execute(select(balances).where(balances.c.account_id == account_id)).all()
    finally:
        db.dispose()
    return {row.asset: Decimal(row.available + row.locked).scaleb(-SCALES[row.asset]) for row in rows}


async def check_conservation(
    client: httpx.AsyncClient, traders: list[Trader], database_url: str, *, fees_expected: bool
) -> None:
    totals = dict.fromkeys(CREDITS, Decimal(0))
    for trader in traders:
        body = expect(await client.get(f"{API}/account/balances", headers=trader.headers), 200)
        for balance in body["data"]:
            totals[balance["asset"]] += Decimal(balance["available"]) + Decimal(balance["locked"])
    fees = system_balances(database_url, FEE_ACCOUNT)
    assert any(fees.values()) or not fees_expected, "trades should have charged fees"
    for asset, credited in CREDITS.items():
        assert totals[asset] + fees.get(asset, Decimal(0)) == credited * len(traders), (asset, totals, fees)


async def check_book(client: httpx.AsyncClient, traders: list[Trader]) -> None:
    expected: dict[str, dict[Decimal, Decimal]] = {"buy": {}, "sell": {}}
    for trader in traders:
        orders = await paged(client, f"{API}/orders", {"status": "open", "symbol": SYMBOL}, trader.headers)
        for order in orders:
            assert order["status"] in OPEN, order
            side = expected[order["side"]]
            price = Decimal(order["price"])
            side[price] = side.get(price, Decimal(0)) + Decimal(order["remainingQuantity"])
    book = expect(await client.get(f"{API}/orderbook/{SYMBOL}", params={"depth": 1000}), 200)
    bids = [(Decimal(p), Decimal(q)) for p, q in book["bids"]]
    asks = [(Decimal(p), Decimal(q)) for p, q in book["asks"]]
    assert dict(bids) == expected["buy"]
    assert dict(asks) == expected["sell"]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    if bids and asks:
        assert bids[0][0] < asks[0][0], "the book is crossed"


async def check_klines(client: httpx.AsyncClient) -> int:
    """Every 1m bucket equals the public trades of its minute; returns the trades checked."""
    trades = expect(await client.get(f"{API}/trades/{SYMBOL}", params={"limit": 1000}), 200)["data"]
    klines = expect(
        await client.get(f"{API}/klines/{SYMBOL}", params={"interval": "1m", "limit": 1000}), 200
    )["data"]
    minutes: dict[int, list[dict[str, Any]]] = {}
    for t in trades:
        minutes.setdefault(t["time"] - t["time"] % 60_000, []).append(t)
    # With 1000 trades returned the oldest minute may be cut: compare the complete minutes.
    complete = set(minutes) if len(trades) < 1000 else {m for m in minutes if m > min(minutes)}
    by_open_time = {k[0]: k for k in klines}
    assert complete <= set(by_open_time), "a minute with trades has no kline"
    for minute in complete:
        ordered = sorted(minutes[minute], key=lambda t: t["tradeId"])
        prices = [Decimal(t["price"]) for t in ordered]
        _, open_, high, low, close, volume, _, _, count = by_open_time[minute]
        assert Decimal(volume) == sum((Decimal(t["quantity"]) for t in ordered), Decimal(0)), minute
        assert count == len(ordered), minute
        assert (Decimal(open_), Decimal(high), Decimal(low), Decimal(close)) == (
            prices[0],
            max(prices),
            min(prices),
            prices[-1],
        ), minute
    if len(trades) < 1000:
        assert sum(k[8] for k in klines) == len(trades), "klines count trades nobody can see"
    return sum(len(minutes[m]) for m in complete)


class Phases:
    """Prints how long each phase of the test took (shown with ``-s`` or on failure)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self, phase: str) -> None:
        now = time.monotonic()
        print(f"  {phase}: {now - self.last:.1f} s")
        self.last = now


# -- the test ------------------------------------------------------------------------------------


def grant_admin(database_url: str, user_id: int) -> None:
    """What an operator does by hand: give a registered user the admin role in the database."""
    users = table_of(UserRow)
    db = create_db_engine(database_url)
    try:
        with db.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(roles="admin,user"))
    finally:
        db.dispose()


async def setup_users(client: httpx.AsyncClient, database_url: str) -> list[Trader]:
    """Register and log in the traders at once; the first is also the operator (admin role
    granted in the database before it logs in) and funds everyone through the credit endpoint.
    Each registration and login is an argon2 hash at production cost: keep them few."""

    async def enroll(trader: Trader) -> None:
        credentials = {"email": trader.email, "password": PASSWORD}
        trader.user_id = expect(await client.post(f"{API}/auth/register", json=credentials), 201)["userId"]
        if trader.index == 0:
            await asyncio.to_thread(grant_admin, database_url, trader.user_id)
        trader.token = expect(await client.post(f"{API}/auth/login", json=credentials), 200)["accessToken"]

    traders = [Trader(i, f"trader{i}-{secrets.token_hex(3)}@crash.example.com") for i in range(TRADERS)]
    await asyncio.gather(*(enroll(t) for t in traders))
    admin = traders[0].headers

    async def fund(trader: Trader, asset: str, amount: Decimal) -> None:
        credit = {
            "userId": trader.user_id,
            "asset": asset,
            "amount": str(amount),
            "reason": "crash test funding",
            "creditId": f"fund-{asset}-{trader.user_id}",
        }
        expect(await client.post(f"{API}/admin/credits", json=credit, headers=admin), 201)

    await asyncio.gather(*(fund(t, asset, amount) for t in traders for asset, amount in CREDITS.items()))
    return traders


async def test_nothing_acknowledged_is_lost_when_the_server_is_killed(
    backend: Backend, server: ServerProcess, seed: int
) -> None:
    clock = Phases()
    server.start()
    await asyncio.to_thread(server.wait_ready)
    clock("server ready")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT_S) as client:
        traders = await setup_users(client, backend.database_url)
    clock("users funded")

    # Stream orders and cancels from every trader at once; SIGKILL the server mid-stream.
    rng = random.Random(seed)
    kill_after_s = rng.uniform(0.5, 2.0)
    stop = asyncio.Event()
    streams = [
        asyncio.create_task(trade(server.base_url, t, random.Random(f"{seed}-{t.index}"), stop))
        for t in traders
    ]
    await wait_for_first_acks(traders, streams)  # the stream is flowing: start the clock
    await asyncio.sleep(kill_after_s)
    assert not any(s.done() for s in streams), [s.exception() for s in streams if s.done()]
    await asyncio.to_thread(server.kill)
    stop.set()
    stopped_by_kill = await asyncio.wait_for(asyncio.gather(*streams), STREAM_TIMEOUT_S)
    assert all(stopped_by_kill)
    placed = [p for t in traders for p in t.placed]
    acked = [p for p in placed if p.acked]
    print(
        f"killed after {kill_after_s:.2f} s: {len(placed)} orders sent, {len(acked)} acknowledged, "
        f"{sum(p.cancel_ack is not None for p in placed)} cancels acknowledged, "
        f"{sum(p.status_code is None for p in placed)} unanswered"
    )
    assert len(acked) >= TRADERS, server.log_tail()
    clock("stream killed")

    # Restart on the same data: recovery must prove the state and serve it.
    server.start()
    await asyncio.to_thread(server.wait_ready)
    clock("restarted")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT_S) as client:
        unanswered = await check_every_order(client, traders)
        applied = await resolve_by_retry(client, unanswered)
        print(f"  of {len(unanswered)} unanswered orders {applied} had been applied before the kill")
        check_nothing_twice(backend.database_url, traders)
        clock("orders checked")
        await check_conservation(client, traders, backend.database_url, fees_expected=False)
        await check_book(client, traders)
        trades_before = expect(await client.get(f"{API}/trades/{SYMBOL}", params={"limit": 1}), 200)["data"]

        # Trade after the restart too: the buckets written before the kill must merge correctly.
        buyer, seller = traders[0], traders[1]
        for who, side, price in ((buyer, "buy", "51000.00"), (seller, "sell", "49000.00")):
            body = {"symbol": SYMBOL, "side": side, "type": "limit", "price": price, "quantity": "0.0010"}
            expect(await client.post(f"{API}/orders", json=body, headers=who.headers), 201)
        trades_after = expect(await client.get(f"{API}/trades/{SYMBOL}", params={"limit": 1}), 200)["data"]
        assert trades_after and (
            not trades_before or trades_after[0]["tradeId"] > trades_before[0]["tradeId"]
        )
        # No writes from here on: verify (journal replay vs the stored state) runs meanwhile.
        verifying = asyncio.create_task(asyncio.to_thread(cli, backend.env, "verify"))
        assert await check_klines(client) > 0
        await check_conservation(client, traders, backend.database_url, fees_expected=True)
        await check_book(client, traders)
    clock("klines checked")

    verified = await verifying
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ok:"), verified.stdout
    clock("verified")
