"""Building blocks for the engine tests: opening engines, a seeded workload, and reading the
database back to compare it with the core.

Amounts are integer units: BTC has 8 decimals, USDT 6 (see ``cambist.defaults``); a BTC-USDT
price is USDT units per whole BTC, on a 0.01 tick (10_000 units), quantities on a 0.0001 lot.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine as DbEngine

from cambist.core.commands import CancelOrder, Command, Credit, PlaceOrder
from cambist.core.events import Outcome
from cambist.core.exchange import ExchangeCore
from cambist.core.types import OPEN_STATUSES, OrderType, RejectCode, Side
from cambist.defaults import default_commands
from cambist.engine.engine import Engine
from cambist.store.base import Base, create_db_engine
from cambist.store.trading import TradingStore

SYMBOL = "BTC-USDT"
BTC = 10**8  # units in one BTC
USDT = 10**6
LOT = 10_000  # 0.0001 BTC
TICK = 10_000  # 0.01 USDT
MID = 50_000 * USDT
ACCOUNTS = (1, 2, 3, 4)

TABLES = Base.metadata.tables
WAIT_S = 10.0  # upper bound on any wait for the engine in these tests

StoreWrapper = Callable[[TradingStore], TradingStore]


class EngineFactory:
    """Opens engines (each on its own connection pool) on one database; closes them all."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.db = create_db_engine(url)  # the test's own connections, for reading back
        self._engines: list[Engine] = []
        self._dbs: list[DbEngine] = [self.db]

    async def open(self, store: StoreWrapper | None = None, *, start: bool = True, **kwargs: Any) -> Engine:
        db = create_db_engine(self.url)
        self._dbs.append(db)
        trading = TradingStore(db)
        engine = Engine(store(trading) if store else trading, **kwargs)
        self._engines.append(engine)
        if start:
            await engine.start()
        return engine

    async def stop(self, engine: Engine) -> None:
        await engine.stop()
        self._engines.remove(engine)

    def store(self) -> TradingStore:
        return TradingStore(self.db)

    async def close(self) -> None:
        for engine in self._engines:
            await engine.stop()
        self._engines.clear()
        for db in self._dbs:
            db.dispose()


async def run_all(engine: Engine, commands: Sequence[Command]) -> list[Outcome]:
    """Apply commands one after another; every one must be accepted."""
    outcomes = []
    for command in commands:
        outcome = await engine.execute(command)
        assert outcome.reject is None, (command, outcome)
        outcomes.append(outcome)
    return outcomes


async def bootstrap(engine: Engine, accounts: Sequence[int] = ACCOUNTS) -> None:
    """Default assets and markets, then 10 BTC and 1,000,000 USDT for each account."""
    await run_all(engine, default_commands())
    await run_all(engine, funding(accounts))


def funding(accounts: Sequence[int]) -> list[Command]:
    commands: list[Command] = []
    for account in accounts:
        commands.append(Credit(f"fund-btc-{account}", account, "BTC", 10 * BTC, "test funding"))
        commands.append(Credit(f"fund-usdt-{account}", account, "USDT", 1_000_000 * USDT, "test funding"))
    return commands


def limit(
    account: int, side: str, price: int, quantity: int, client_order_id: str | None = None
) -> PlaceOrder:
    return PlaceOrder(
        account_id=account,
        symbol=SYMBOL,
        side=Side(side),
        order_type=OrderType.LIMIT,
        price=price,
        quantity=quantity,
        client_order_id=client_order_id,
    )


@dataclass
class Workload:
    """Seeded limit orders around the mid price that cross and rest, with some cancels."""

    seed: int
    accounts: Sequence[int] = ACCOUNTS
    rng: random.Random = field(init=False)
    open_orders: dict[int, int] = field(default_factory=dict)  # order id -> account
    counter: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def next(self) -> Command:
        rng = self.rng
        self.counter += 1
        if self.open_orders and rng.random() < 0.2:
            order_id = rng.choice(sorted(self.open_orders))
            return CancelOrder(account_id=self.open_orders.pop(order_id), order_id=order_id)
        side = rng.choice(("buy", "sell"))
        price = MID + rng.randint(-5, 5) * 100 * TICK
        quantity = rng.randint(2, 30) * LOT
        return limit(rng.choice(self.accounts), side, price, quantity, f"w{self.seed}-{self.counter}")

    def observe(self, outcome: Outcome) -> None:
        """Track which orders are open, so cancels mostly hit live orders."""
        for view in (outcome.order, *outcome.orders):
            if view is None:
                continue
            if view.status in OPEN_STATUSES:
                self.open_orders[view.order_id] = view.account_id
            else:
                self.open_orders.pop(view.order_id, None)

    async def run(self, engine: Engine, count: int, concurrency: int = 1) -> list[Outcome]:
        """Submit ``count`` commands, ``concurrency`` at a time, each awaited to its answer."""
        outcomes: list[Outcome] = []
        submitted = 0
        while submitted < count:
            wave = [self.next() for _ in range(min(concurrency, count - submitted))]
            submitted += len(wave)
            for outcome in await asyncio.gather(*(engine.execute(c) for c in wave)):
                assert outcome.reject in (None, RejectCode.ORDER_NOT_FOUND), outcome
                self.observe(outcome)
                outcomes.append(outcome)
        return outcomes


# -- reading the database back ---------------------------------------------------------------


def rows(db: DbEngine, table: str, *order_by: str) -> list[dict[str, Any]]:
    t = TABLES[table]
    with db.connect() as conn:
        result = conn.execute(select(t).order_by(*(t.c[c] for c in order_by)))
        return [dict(row._mapping) for row in result]


def scalar(db: DbEngine, query: Any) -> Any:
    with db.connect() as conn:
        return conn.execute(query).scalar()


def max_journal_seq(db: DbEngine) -> int:
    return int(scalar(db, select(func.coalesce(func.max(TABLES["journal"].c.seq), 0))))


def stored_balances(db: DbEngine) -> dict[tuple[int, str], tuple[int, int]]:
    """Non-zero balance rows (a balance that went back to zero keeps a zero row)."""
    return {
        (r["account_id"], r["asset"]): (r["available"], r["locked"])
        for r in rows(db, "balances", "account_id", "asset")
        if r["available"] or r["locked"]
    }


def core_balances(core: ExchangeCore) -> dict[tuple[int, str], tuple[int, int]]:
    return {key: (avail, locked) for key, (avail, locked) in core.balances.items() if avail or locked}


def assert_ledger_matches_balances(db: DbEngine) -> None:
    """The ledger invariant: per (account, asset, bucket) the entries sum to the balance row,
    and every posting sums to zero per asset."""
    ledger = TABLES["ledger_entries"]
    sums: dict[tuple[int, str], list[int]] = {}
    with db.connect() as conn:
        grouped = conn.execute(
            select(ledger.c.account_id, ledger.c.asset, ledger.c.bucket, func.sum(ledger.c.delta)).group_by(
                ledger.c.account_id, ledger.c.asset, ledger.c.bucket
            )
        )
        for account, asset, bucket, total in grouped:
            sums.setdefault((account, asset), [0, 0])[0 if bucket == "available" else 1] += int(total)
        unbalanced = conn.execute(
            select(ledger.c.posting_id, ledger.c.asset)
            .group_by(ledger.c.posting_id, ledger.c.asset)
            .having(func.sum(ledger.c.delta) != 0)
        ).all()
    assert unbalanced == [], f"postings that do not sum to zero: {unbalanced[:5]}"
    from_ledger = {key: (avail, locked) for key, (avail, locked) in sums.items() if avail or locked}
    assert from_ledger == stored_balances(db)


def open_order_rows(db: DbEngine) -> dict[int, dict[str, Any]]:
    return {r["order_id"]: r for r in rows(db, "orders", "order_id") if r["is_open"]}


def depth_from_rows(
    open_orders: dict[int, dict[str, Any]], symbol: str = SYMBOL
) -> tuple[dict[int, int], dict[int, int]]:
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for r in open_orders.values():
        if r["symbol"] != symbol:
            continue
        side = bids if r["side"] == "buy" else asks
        side[r["price"]] = side.get(r["price"], 0) + r["quantity"] - r["filled_quantity"]
    return bids, asks


async def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.01)
