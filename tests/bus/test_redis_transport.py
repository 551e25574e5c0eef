"""The Redis transport between gateways and the engine, in one event loop against a real Redis.

Each test runs an ``Engine`` on a SQLite file, a ``RedisEngineServer`` beside it and one or two
``RedisEngineLink`` gateways, all on a random namespace of the shared Redis (its keys are deleted
at the end). They check what the transport promises:

- outcomes are the engine's own and reach the gateway that sent the command;
- every gateway follows every committed batch, in order, and repairs a gap from the store;
- a stream entry is applied at most once, across engine restarts, and never when it is older
  than the command timeout by the Redis clock;
- without a heartbeat a gateway refuses commands at once;
- one writer per database (SQLite flock, PostgreSQL advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.engine import Engine as DbEngine

from cambist.bus import wire
from cambist.bus.redis_engine import RedisEngineServer
from cambist.bus.redis_link import RedisEngineLink
from cambist.config import load_settings
from cambist.core.commands import Command, Credit, PlaceOrder, encode_command
from cambist.core.events import Changes, Outcome
from cambist.core.types import OrderType, RejectCode, Side
from cambist.defaults import default_commands
from cambist.engine.engine import (
    DEPTH_SNAPSHOT_LEVELS,
    CommittedBatch,
    Engine,
    EngineUnavailable,
    OutcomeUnknown,
)
from cambist.engine.link import MarketState, load_market_state, market_state_of
from cambist.engine.node import EngineNode
from cambist.engine.writer_lock import WriterLock, WriterLockTaken
from cambist.marketdata.hub import MarketDataHub
from cambist.store import migrate
from cambist.store.base import Base, create_db_engine
from cambist.store.trading import JournalItem, TradingStore

pytestmark = pytest.mark.timeout(30)  # every test is meant to take well under 5 s

SYMBOL = "BTC-USDT"
ETH_SYMBOL = "ETH-USDT"
BTC = 10**8
USDT = 10**6
LOT = 10_000  # 0.0001 BTC
TICK = 10_000  # 0.01 USDT
MID = 50_000 * USDT
ETH_MID = 3_000 * USDT
ACCOUNTS = (1, 2, 3, 4)
FIXED_CLOCK_MS = 1_700_000_000_000  # engines whose outcomes are compared share one clock
EXECUTE_TIMEOUT_S = 5.0
WAIT_S = 5.0
JOURNAL = Base.metadata.tables["journal"]


# -- building blocks ---------------------------------------------------------------------------


def funding(accounts: Sequence[int] = ACCOUNTS) -> list[Command]:
    commands: list[Command] = []
    for account in accounts:
        commands.append(Credit(f"fund-btc-{account}", account, "BTC", 10 * BTC, "test funding"))
        commands.append(Credit(f"fund-eth-{account}", account, "ETH", 100 * BTC, "test funding"))
        commands.append(Credit(f"fund-usdt-{account}", account, "USDT", 1_000_000 * USDT, "test funding"))
    return commands


def limit(
    account: int,
    side: str,
    price: int,
    quantity: int,
    client_order_id: str | None = None,
    symbol: str = SYMBOL,
) -> PlaceOrder:
    return PlaceOrder(
        account_id=account,
        symbol=symbol,
        side=Side(side),
        order_type=OrderType.LIMIT,
        price=price,
        quantity=quantity,
        client_order_id=client_order_id,
    )


def random_order(rng: random.Random, tag: str | None = None) -> PlaceOrder:
    # ETH-USDT has BTC-USDT's tick and lot; at 3,000 USDT it needs 0.01 ETH for 5 USDT notional.
    symbol, mid, lots = rng.choice(((SYMBOL, MID, 1), (ETH_SYMBOL, ETH_MID, 100)))
    return limit(
        rng.choice(ACCOUNTS),
        rng.choice(("buy", "sell")),
        mid + rng.randint(-5, 5) * 100 * TICK,
        rng.randint(2, 20) * lots * LOT,
        tag,
        symbol,
    )


def journal_count(db: DbEngine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(JOURNAL)).scalar_one())


def journal_max_seq(db: DbEngine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(JOURNAL.c.seq), 0))).scalar_one())


def depth_of(snapshot: Any) -> tuple[list[list[int]], list[list[int]]]:
    """Bids and asks as plain lists (msgpack brings tuples back as lists)."""
    return [list(level) for level in snapshot.bids], [list(level) for level in snapshot.asks]


def engine_depth(engine: Engine, symbol: str) -> tuple[list[list[int]], list[list[int]]]:
    bids, asks = engine.core.depth(symbol, DEPTH_SNAPSHOT_LEVELS)
    return [list(level) for level in bids], [list(level) for level in asks]


def state_key(state: MarketState) -> tuple[Any, ...]:
    """A market state in a form independent of list order (and of tuple vs list)."""
    return (
        state.sequence,
        sorted((a.asset, a.scale) for a in state.assets),
        sorted(((m.symbol, m) for m in state.markets), key=lambda pair: pair[0]),
        sorted((d.symbol, d.sequence, *depth_of(d)) for d in state.depth),
    )


async def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.01)


async def execute(link: Any, command: Command) -> Outcome:
    outcome: Outcome = await asyncio.wait_for(link.execute(command), EXECUTE_TIMEOUT_S)
    return outcome


async def execute_all(link: Any, commands: Sequence[Command]) -> list[Outcome]:
    return [await execute(link, command) for command in commands]


class Harness:
    """Engines, servers and links on one database and one Redis namespace; closes them all."""

    def __init__(self, redis_url: str, namespace: str, db_url: str) -> None:
        self.redis_url = redis_url
        self.namespace = namespace
        self.keys = wire.Keys(namespace)
        self.db_url = db_url
        self.db = create_db_engine(db_url)  # the test's own connections, for reading back
        self.redis = redis.Redis.from_url(redis_url)
        self._dbs: list[DbEngine] = [self.db]
        self._engines: list[Engine] = []
        self._servers: list[RedisEngineServer] = []
        self._links: list[RedisEngineLink] = []

    def store(self, url: str | None = None) -> TradingStore:
        db = create_db_engine(url or self.db_url)
        self._dbs.append(db)
        return TradingStore(db)

    async def engine(self, store: TradingStore | None = None, **kwargs: Any) -> Engine:
        engine = Engine(store or self.store(), **kwargs)
        self._engines.append(engine)
        await engine.start()
        return engine

    async def server(self, engine: Engine, **kwargs: Any) -> RedisEngineServer:
        server = RedisEngineServer(engine, self.redis_url, self.namespace, **kwargs)
        self._servers.append(server)
        await server.start()
        return server

    async def node(self, **engine_kwargs: Any) -> tuple[Engine, RedisEngineServer]:
        engine = await self.engine(**engine_kwargs)
        return engine, await self.server(engine)

    async def link(self, **kwargs: Any) -> RedisEngineLink:
        link = RedisEngineLink(self.redis_url, self.namespace, self.store(), **kwargs)
        self._links.append(link)
        await asyncio.wait_for(link.start(), WAIT_S)
        if self._servers:  # the heartbeat is read every 250 ms: wait for the first one
            await wait_until(lambda: link.available, timeout_s=1.5, what="the engine's heartbeat seen")
        return link

    async def stop_node(self, engine: Engine, server: RedisEngineServer) -> None:
        await self.stop_server(server)
        await self.stop_engine(engine)

    async def stop_server(self, server: RedisEngineServer) -> None:
        self._servers.remove(server)
        await server.stop()

    async def stop_engine(self, engine: Engine) -> None:
        self._engines.remove(engine)
        await engine.stop()

    def redis_time_ms(self) -> int:
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def add_entry(self, fields: dict[bytes, Any], entry_id: str = "*") -> str:
        """A command stream entry added by hand (the link's fields, see ``_send_loop``)."""
        added = self.redis.xadd(self.keys.commands, fields, id=entry_id)
        return added.decode() if isinstance(added, bytes) else str(added)

    def last_entry_id(self) -> str:
        entries: Any = self.redis.xrevrange(self.keys.commands, count=1)
        return str(entries[0][0].decode())

    async def close(self) -> None:
        hung: list[str] = []  # a stop that does not finish is a failure, not a hang
        parts: list[Any] = [*reversed(self._links), *reversed(self._servers), *reversed(self._engines)]
        for part in parts:
            try:
                await asyncio.wait_for(part.stop(), WAIT_S)
            except TimeoutError:
                hung.append(type(part).__name__)
            except Exception:
                pass
        for db in self._dbs:
            db.dispose()
        try:
            keys = list(self.redis.scan_iter(match=f"{self.namespace}:*", count=500))
            if keys:
                self.redis.delete(*keys)
        finally:
            self.redis.close()
        assert not hung, f"stop() did not finish within {WAIT_S} s: {hung}"


@pytest.fixture
async def harness(redis_url: str, sqlite_url: str) -> AsyncIterator[Harness]:
    migrate.upgrade(sqlite_url)
    rig = Harness(redis_url, f"t-{secrets.token_hex(6)}", sqlite_url)
    try:
        yield rig
    finally:
        await rig.close()


def expect_reply(link: RedisEngineLink, request_id: int) -> asyncio.Future[Outcome]:
    """A future the link resolves when this request id's reply arrives (for hand-made entries)."""
    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    link._waiting[request_id] = future
    return future


def entry_fields(link: RedisEngineLink | str, request_id: int, payload: bytes) -> dict[bytes, Any]:
    gateway = link if isinstance(link, str) else link.gateway_id
    return {wire.FIELD_GATEWAY: gateway, wire.FIELD_REQUEST: request_id, wire.FIELD_COMMAND: payload}


# -- 1. round trip -----------------------------------------------------------------------------


async def test_outcomes_over_redis_equal_the_engines_own(harness: Harness, tmp_path: Path) -> None:
    reference_url = f"sqlite:///{tmp_path}/reference.db"
    migrate.upgrade(reference_url)
    reference = await harness.engine(harness.store(reference_url), clock_ms=lambda: FIXED_CLOCK_MS)
    await harness.node(clock_ms=lambda: FIXED_CLOCK_MS)
    link = await harness.link()

    commands: list[Command] = [*default_commands(), *funding()]
    commands += [
        limit(1, "sell", MID, 5 * LOT, "s1"),
        limit(1, "sell", MID + 100 * TICK, 3 * LOT, "s2"),
        limit(2, "buy", MID + 100 * TICK, 7 * LOT, "b1"),  # crosses both asks, fills 7 lots
        limit(3, "buy", MID - 100 * TICK, 4 * LOT, "b2"),  # rests
        limit(9, "buy", MID, 1 * LOT, "nofunds"),  # rejected: account 9 has nothing
        Credit("fund-btc-1", 1, "BTC", BTC, "again"),  # duplicate credit id
        limit(2, "buy", MID, 1 * LOT, "b1"),  # duplicate clientOrderId
    ]
    direct = [await asyncio.wait_for(reference.execute(c), EXECUTE_TIMEOUT_S) for c in commands]
    remote = await execute_all(link, commands)

    assert remote == direct
    rejects = [o.reject for o in remote if o.reject is not None]
    assert rejects == [
        RejectCode.INSUFFICIENT_FUNDS,
        RejectCode.DUPLICATE_CREDIT_ID,
        RejectCode.DUPLICATE_CLIENT_ORDER_ID,
    ]
    assert any(o.trades for o in remote), "the crossing order traded"


async def test_two_gateways_get_their_own_outcomes_under_concurrency(harness: Harness) -> None:
    engine, _ = await harness.node()
    first, second = await harness.link(), await harness.link()
    await execute_all(first, [*default_commands(), *funding()])

    rng = random.Random(7)
    sent: list[tuple[RedisEngineLink, PlaceOrder]] = []
    for index in range(200):
        link = first if index % 2 == 0 else second
        sent.append((link, random_order(rng, f"{'ab'[index % 2]}-{index}")))
    outcomes = await asyncio.gather(*(execute(link, command) for link, command in sent))

    for (_, command), outcome in zip(sent, outcomes, strict=True):
        assert outcome.reject is None, outcome
        assert outcome.order is not None
        assert outcome.order.client_order_id == command.client_order_id
        assert (outcome.order.account_id, outcome.order.symbol) == (command.account_id, command.symbol)
        assert (outcome.order.price, outcome.order.quantity) == (command.price, command.quantity)
    seqs = [o.seq for o in outcomes]
    assert len(set(seqs)) == 200
    assert max(seqs) == engine.last_seq == journal_max_seq(harness.db)
    assert journal_count(harness.db) == engine.last_seq


# -- 2. events ---------------------------------------------------------------------------------


async def test_every_gateway_follows_every_batch_in_order(harness: Harness) -> None:
    engine, _ = await harness.node(batch_max=16)
    links = [await harness.link(), await harness.link()]
    received: list[list[CommittedBatch]] = [[], []]
    hubs = [MarketDataHub(), MarketDataHub()]
    start_seq = engine.last_seq
    for link, batches, hub in zip(links, received, hubs, strict=True):
        state = link.market_state()
        hub.load(state.assets, state.markets, state.depth)
        link.subscribe(batches.append)
        link.subscribe(hub.on_commit)
        link.on_state(lambda s, hub=hub: hub.reload(s.assets, s.markets, s.depth))
    reloads = [link.reloads for link in links]

    await execute_all(links[0], [*default_commands(), *funding()])
    rng = random.Random(11)
    burst = [random_order(rng) for _ in range(300)]
    outcomes = await asyncio.gather(*(execute(links[i % 2], c) for i, c in enumerate(burst)))
    assert all(o.reject is None for o in outcomes)

    final = engine.last_seq
    await wait_until(lambda: all(link.last_seq == final for link in links), what="links caught up")
    for link, batches in zip(links, received, strict=True):
        assert batches, "no batch received"
        assert batches[0].first_seq == start_seq + 1
        for before, after in itertools.pairwise(batches):
            assert after.first_seq == before.changes.last_seq + 1, "batches not contiguous"
            assert after.changes.last_seq >= after.first_seq
        assert batches[-1].changes.last_seq == final
        assert link.reloads == reloads[links.index(link)], "a gap was repaired: a batch went missing"
    for hub in hubs:
        for symbol in (SYMBOL, ETH_SYMBOL):
            assert depth_of(hub.depth(symbol)) == engine_depth(engine, symbol)
        assert hub.assets == dict(engine.core.assets)
        assert set(hub.markets) == set(engine.core.markets)
    assert engine_depth(engine, SYMBOL) != ([], []), "the burst left a book to compare"


# -- 3. at most once, across restarts; nothing late -------------------------------------------


async def test_restarted_engine_resumes_after_the_committed_position(harness: Harness) -> None:
    engine, server = await harness.node()
    link = await harness.link()
    await execute_all(link, [*default_commands(), *funding()])
    # No clientOrderId: a command read again would be applied again, not caught as a repeat.
    rng = random.Random(3)
    for _ in range(20):
        assert (await execute(link, random_order(rng))).reject is None
    store = harness.store()
    assert store.load_input_position() == harness.last_entry_id() == engine.input_position
    seq, count = engine.last_seq, journal_count(harness.db)
    await harness.stop_node(engine, server)

    restarted, _ = await harness.node()
    assert restarted.input_position == harness.last_entry_id()
    await wait_until(lambda: link.available, what="link sees the new engine")
    await asyncio.sleep(1.2)  # more than one XREAD block: entries before the position are not read
    assert (restarted.last_seq, journal_count(harness.db)) == (seq, count)

    outcome = await execute(link, random_order(rng))
    assert outcome.reject is None and outcome.seq == seq + 1
    assert journal_count(harness.db) == count + 1
    assert store.load_input_position() == harness.last_entry_id()


async def test_entries_added_while_the_engine_was_down_are_applied_once(harness: Harness) -> None:
    engine, server = await harness.node()
    link = await harness.link()
    await execute_all(link, [*default_commands(), *funding()])
    seq = engine.last_seq
    await harness.stop_node(engine, server)

    # Fresh entries queued while no engine runs (by the link's own wire format).
    waiting = [expect_reply(link, 1_000_000 + i) for i in range(3)]
    for i in range(3):
        harness.add_entry(entry_fields(link, 1_000_000 + i, encode_command(limit(1, "buy", MID, LOT))))
    engine, server = await harness.node()
    outcomes = await asyncio.wait_for(asyncio.gather(*waiting), WAIT_S)
    assert [o.seq for o in outcomes] == [seq + 1, seq + 2, seq + 3]
    assert harness.store().load_input_position() == harness.last_entry_id()

    await harness.stop_node(engine, server)
    engine, server = await harness.node()
    await asyncio.sleep(1.2)
    assert engine.last_seq == seq + 3 == journal_count(harness.db)


async def test_an_entry_older_than_the_timeout_is_refused_and_never_journaled(harness: Harness) -> None:
    engine, _ = await harness.node()
    link = await harness.link()
    now_ms = harness.redis_time_ms()
    refused = expect_reply(link, 777)
    credit = Credit("late-credit", 1, "BTC", BTC, "queued a minute ago")
    harness.add_entry(entry_fields(link, 777, encode_command(credit)), entry_id=f"{now_ms - 60_000}-0")

    with pytest.raises(EngineUnavailable, match="not applied") as raised:
        await asyncio.wait_for(refused, WAIT_S)
    assert not isinstance(raised.value, OutcomeUnknown)
    assert journal_count(harness.db) == 0 == engine.last_seq
    assert harness.store().load_input_position() is None

    # The stream goes on: a fresh command is applied.
    outcome = await execute(link, default_commands()[0])
    assert outcome.reject is None and outcome.seq == 1


async def test_a_command_queued_longer_than_the_timeout_is_not_applied(harness: Harness) -> None:
    """The link sends while the engine is down (a stale heartbeat still says available): the
    engine that starts later refuses the entry by its Redis-clock age."""
    link = await harness.link(command_timeout_ms=300)
    status = wire.EngineStatus("gone", True, 0, 0)
    harness.redis.set(harness.keys.heartbeat, wire.encode(status), px=wire.HEARTBEAT_TTL_MS)
    await wait_until(lambda: link.available, what="the stale heartbeat read")
    sent = asyncio.ensure_future(link.execute(default_commands()[0]))
    await asyncio.sleep(0.6)
    assert not sent.done()
    engine = await harness.engine()
    await harness.server(engine, command_timeout_ms=300)  # the gateway's timeout
    with pytest.raises(EngineUnavailable, match="not applied"):
        await asyncio.wait_for(sent, WAIT_S)
    assert journal_count(harness.db) == 0


# -- 4. fail fast ------------------------------------------------------------------------------


async def test_without_a_heartbeat_commands_fail_at_once(harness: Harness) -> None:
    link = await harness.link()
    assert not link.available
    started = time.monotonic()
    with pytest.raises(EngineUnavailable):
        await execute(link, default_commands()[0])
    assert time.monotonic() - started < 0.2

    started = time.monotonic()
    engine, server = await harness.node()
    await wait_until(lambda: link.available, timeout_s=1.5, what="the heartbeat seen")
    assert time.monotonic() - started < 1.5
    assert (await execute(link, default_commands()[0])).reject is None

    await harness.stop_server(server)  # deletes the heartbeat
    await wait_until(lambda: not link.available, timeout_s=1.0, what="the engine seen gone")
    started = time.monotonic()
    with pytest.raises(EngineUnavailable):
        await execute(link, default_commands()[1])
    assert time.monotonic() - started < 0.2
    assert engine.last_seq == 1


# -- 5. gap repair -----------------------------------------------------------------------------


async def test_a_missed_batch_makes_the_gateway_reload_from_the_store(harness: Harness) -> None:
    engine = await harness.engine()
    server = RedisEngineServer(engine, harness.redis_url, harness.namespace)
    drop = {"next": False}
    publish = server._on_commit

    def lossy(batch: CommittedBatch) -> None:  # the channel losing one batch
        if drop["next"]:
            drop["next"] = False
            return
        publish(batch)

    server._on_commit = lossy  # type: ignore[method-assign]
    harness._servers.append(server)
    await server.start()
    link = await harness.link()
    hub = MarketDataHub()
    state = link.market_state()
    hub.load(state.assets, state.markets, state.depth)
    link.subscribe(hub.on_commit)
    states: list[MarketState] = []
    link.on_state(states.append)
    link.on_state(lambda s: hub.reload(s.assets, s.markets, s.depth))
    await execute_all(link, [*default_commands(), *funding()])
    await wait_until(lambda: link.last_seq == engine.last_seq)
    reloads = link.reloads

    drop["next"] = True
    await execute(link, limit(1, "sell", MID + 300 * TICK, 2 * LOT))  # its batch never arrives
    await asyncio.sleep(0.2)
    assert link.last_seq == engine.last_seq - 1 and link.reloads == reloads
    await execute(link, limit(2, "buy", MID - 300 * TICK, 3 * LOT))  # a gap before this one
    await wait_until(lambda: link.last_seq == engine.last_seq, what="the gap repaired")

    assert link.reloads == reloads + 1
    assert states and states[-1] is link.market_state()
    assert state_key(link.market_state()) == state_key(load_market_state(harness.store()))
    assert depth_of(hub.depth(SYMBOL)) == engine_depth(engine, SYMBOL)
    assert [MID + 300 * TICK, 2 * LOT] in depth_of(hub.depth(SYMBOL))[1]


async def test_an_engine_restart_or_an_unreadable_event_makes_the_gateway_reload(harness: Harness) -> None:
    engine, server = await harness.node()
    link = await harness.link()
    await execute_all(link, default_commands())
    await wait_until(lambda: link.last_seq == engine.last_seq)
    reloads = link.reloads

    harness.redis.publish(harness.keys.events, wire.encode(wire.EngineRestarted(engine.last_seq)))
    await wait_until(lambda: link.reloads == reloads + 1, what="reload on EngineRestarted")
    harness.redis.publish(harness.keys.events, b"\xc1 not msgpack")
    await wait_until(lambda: link.reloads == reloads + 2, what="reload on an unreadable event")

    # A real restart: the new server announces itself.
    await harness.stop_node(engine, server)
    engine, server = await harness.node()
    await wait_until(lambda: link.reloads >= reloads + 3, what="reload on a real restart")
    assert link.last_seq == engine.last_seq
    assert state_key(link.market_state()) == state_key(market_state_of(engine.core))


async def test_a_fabricated_future_batch_is_a_gap(harness: Harness) -> None:
    """A batch whose first sequence number is beyond the next one is never applied blindly."""
    engine, _ = await harness.node()
    link = await harness.link()
    batches: list[CommittedBatch] = []
    link.subscribe(batches.append)
    await execute_all(link, default_commands())
    await wait_until(lambda: link.last_seq == engine.last_seq)
    reloads, seq = link.reloads, link.last_seq
    template = batches[-1].changes
    changes = Changes(
        last_seq=seq + 5,
        last_time=template.last_time,
        state_hash=template.state_hash,
        next_order_id=template.next_order_id,
        next_trade_id=template.next_trade_id,
        next_posting_id=template.next_posting_id,
        assets=[],
        markets=[],
        orders=[],
        trades=[],
        ledger=[],
        balances=[],
        books_changed=[],
    )
    event = wire.EventBatch(seq + 3, changes, [])
    harness.redis.publish(harness.keys.events, wire.encode(event))
    await wait_until(lambda: link.reloads == reloads + 1, what="reload on a gap")


# -- 6. malformed entries ----------------------------------------------------------------------


async def test_a_malformed_entry_is_answered_and_skipped(harness: Harness) -> None:
    engine, server = await harness.node()
    link = await harness.link()
    await execute(link, default_commands()[0])

    garbage = expect_reply(link, 5001)
    harness.add_entry(entry_fields(link, 5001, b"\x93garbage that is no command"))
    harness.add_entry({b"x": b"no gateway, no request id"})
    harness.add_entry(
        entry_fields(link, 5002, encode_command(default_commands()[1])) | {wire.FIELD_REQUEST: b"nan"}
    )
    with pytest.raises(EngineUnavailable, match="not applied") as raised:
        await asyncio.wait_for(garbage, WAIT_S)
    assert not isinstance(raised.value, OutcomeUnknown)

    outcome = await execute(link, default_commands()[1])
    assert outcome.reject is None and outcome.seq == 2
    assert journal_count(harness.db) == 2 == engine.last_seq
    assert server.entries_read == 5
    assert all(not task.done() for task in server._tasks), "a server loop ended"


# -- 7. one writer per database ----------------------------------------------------------------


def node_settings(tmp_path: Path, database_url: str) -> Any:
    return load_settings(
        {
            "CAMBIST_DATA_DIR": str(tmp_path),
            "CAMBIST_DATABASE_URL": database_url,
            "CAMBIST_SECRET_KEY": "test-secret-key-" + "0" * 32,
        }
    )


async def assert_single_writer(tmp_path: Path, database_url: str, *, check_release: bool = False) -> None:
    settings = node_settings(tmp_path, database_url)
    dbs = [create_db_engine(database_url) for _ in range(3)]
    first = EngineNode(settings, dbs[0])
    second = EngineNode(settings, dbs[1])
    try:
        await asyncio.wait_for(first.start(), 20)
        assert first.engine.available and first.engine.core.markets
        with pytest.raises(WriterLockTaken):
            await asyncio.wait_for(second.start(), WAIT_S)
        assert not second.engine.available
        lock = WriterLock(dbs[2])
        with pytest.raises(WriterLockTaken):
            await asyncio.to_thread(lock.acquire)
        if check_release:
            await first.stop()
            await asyncio.to_thread(lock.acquire)  # a stopped node no longer holds the database
            lock.release()
    finally:
        with contextlib.suppress(Exception):
            await first.stop()
        with contextlib.suppress(Exception):
            await second.stop()
        for db in dbs:
            db.dispose()


async def test_a_second_engine_on_a_sqlite_database_refuses_to_start(tmp_path: Path, sqlite_url: str) -> None:
    await assert_single_writer(tmp_path, sqlite_url)


@pytest.mark.postgres
async def test_a_second_engine_on_a_postgres_database_refuses_to_start(
    tmp_path: Path, fresh_postgres_url: Callable[[], str]
) -> None:
    await assert_single_writer(tmp_path, fresh_postgres_url())


async def test_a_stopped_engine_releases_the_writer_lock(tmp_path: Path, db_url: str) -> None:
    """``EngineNode.stop`` releases the lock: another engine may start at once (a restart in
    the same process, a standby taking over) without waiting for the process to exit."""
    await assert_single_writer(tmp_path, db_url, check_release=True)


# -- 8. the market state a gateway loads -------------------------------------------------------


async def test_the_loaded_market_state_is_the_engines(harness: Harness) -> None:
    engine = await harness.engine()
    for command in [*default_commands(), *funding()]:
        assert (await engine.execute(command)).reject is None
    rng = random.Random(5)
    for _ in range(400):
        await engine.execute(random_order(rng))
    loaded = load_market_state(harness.store())
    live = market_state_of(engine.core)
    assert state_key(loaded) == state_key(live)
    assert loaded.depth and all(d.sequence == engine.last_seq for d in loaded.depth)
    assert any(d.bids and d.asks for d in loaded.depth), "the books rest on both sides"


# -- what a stop does to a batch being committed -----------------------------------------------


class SlowStore:
    """The real store, with a commit that takes a while and says when it began."""

    def __init__(self, inner: TradingStore, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.writing = threading.Event()
        self.slow = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write_batch(
        self, journal: Sequence[JournalItem], changes: Changes, input_position: str | None = None
    ) -> None:
        if self.slow:
            self.writing.set()
            time.sleep(self.delay_s)
        self.inner.write_batch(journal, changes, input_position)


async def test_a_command_committed_during_a_stop_is_not_reported_as_not_applied(harness: Harness) -> None:
    """An engine stopped while a batch is being written still commits it (the writer thread
    finishes), so its caller must not be told the command was not applied: either its outcome
    or "unknown" (OutcomeUnknown) is true, "unavailable" is false."""
    slow = SlowStore(harness.store(), delay_s=0.5)
    engine = await harness.engine(slow)  # type: ignore[arg-type]
    for command in default_commands():
        await engine.execute(command)
    slow.slow = True
    future = engine.submit(Credit("during-stop", 1, "BTC", BTC, "committed while stopping"), "1-0")
    await asyncio.to_thread(slow.writing.wait, WAIT_S)
    await harness.stop_engine(engine)

    committed = journal_count(harness.db) == len(default_commands()) + 1
    assert committed, "the batch being written was committed"
    assert future.done()
    error = future.exception() if not future.cancelled() else None
    assert error is None or isinstance(error, OutcomeUnknown), (
        f"committed, yet answered {type(error).__name__}: {error}"
    )
