"""The PostgreSQL fast path (COPY + unnest upserts) writes exactly what the portable path writes."""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec
import pytest
from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from store_builders import (
    SYMBOL,
    T0,
    asset,
    balance,
    changes,
    ledger_leg,
    market,
    order,
    trade,
)

from cambist.core.events import Changes
from cambist.core.types import OrderStatus, Side
from cambist.store.base import Base, create_db_engine
from cambist.store.migrate import upgrade
from cambist.store.trading import JournalItem, TradingStore

# Text a COPY must escape: tab, newline, backslash, quotes, a NUL byte in the payload.
AWKWARD_TEXT = 'tab\there\nnew "line" \\ back\\slash\r{a,b}'
AWKWARD_PAYLOAD = b"\x00\t\n\\\xff msgpack"


def _batches() -> list[tuple[list[JournalItem], Changes]]:
    rng = random.Random(7)
    batches: list[tuple[list[JournalItem], Changes]] = []
    first = changes(1, assets=[asset("USDT", 6), asset("BTC")], markets=[market()])
    batches.append(([(1, T0, "add_asset", AWKWARD_PAYLOAD)], first))
    for n in range(2, 12):
        orders = [
            order(
                rng.randint(1, 30),
                seq=n,
                status=rng.choice(list(OrderStatus)),
                price=rng.choice([None, rng.randint(1, 2**62 - 1)]),
                client_order_id=None,
                side=rng.choice(list(Side)),
            )
            for _ in range(5)
        ]
        orders = list({o.order_id: o for o in orders}.values())  # one state per order per batch
        trades = [
            trade(n * 10 + k, T0 + n * 40_000 + k, rng.randint(90, 110), rng.randint(1, 10**6))
            for k in range(3)
        ]
        legs = [ledger_leg(n, -2, -n), ledger_leg(n, 1, n)]
        legs[0] = msgspec.structs.replace(legs[0], ref=AWKWARD_TEXT)
        balances = [balance(a, "USDT", rng.randint(0, 2**62 - 1), n) for a in (1, 2, -1)]
        journal = [(n, T0 + n, "place_order", AWKWARD_PAYLOAD + bytes([n]))]
        batches.append((journal, changes(n, orders=orders, trades=trades, ledger=legs, balances=balances)))
    batches.append(
        ([(12, T0 + 12, "upsert_market", b"")], changes(12, markets=[market(SYMBOL, taker_fee_ppm=5)]))
    )
    return batches


def _dump(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = create_db_engine(url)
    trading = (
        "assets",
        "markets",
        "orders",
        "trades",
        "fills",
        "balances",
        "ledger_entries",
        "journal",
        "klines",
    )
    try:
        with engine.connect() as conn:
            tables: dict[str, Table] = {name: Base.metadata.tables[name] for name in trading}
            dump = {
                name: [tuple(row) for row in conn.execute(select(t).order_by(*t.primary_key.columns))]
                for name, t in tables.items()
            }
            state = Base.metadata.tables["engine_state"]
            dump["engine_state"] = [
                tuple(r) for r in conn.execute(select(*(c for c in state.c if c.name != "updated_at")))
            ]
            return dump
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_fast_path_writes_what_the_portable_path_writes(fresh_postgres_url: Callable[[], str]) -> None:
    dumps = []
    for fast in (False, True):
        url = fresh_postgres_url()
        upgrade(url)
        engine = create_db_engine(url)
        store = TradingStore(engine, postgres_fast_path=fast)
        for journal, batch in _batches():
            store.write_batch(journal, batch)
        engine.dispose()
        dumps.append(_dump(url))
    assert dumps[0] == dumps[1]
    assert dumps[1]["journal"][0][3] == AWKWARD_PAYLOAD
    assert AWKWARD_TEXT in {row[-1] for row in dumps[1]["ledger_entries"]}


@pytest.mark.parametrize("fast", [False, True])
def test_both_paths_raise_integrity_error_and_roll_back(db_url: str, fast: bool) -> None:
    upgrade(db_url)
    engine = create_db_engine(db_url)
    try:
        store = TradingStore(engine, postgres_fast_path=fast)
        store.write_batch([(1, T0, "credit", b"x")], changes(1, ledger=[ledger_leg(1, 1, 5)]))
        with pytest.raises(IntegrityError):  # the journal insert (a COPY on the fast path) fails
            store.write_batch([(1, T0, "credit", b"x")], changes(2, ledger=[ledger_leg(2, 1, 5)]))
        store.write_batch([(2, T0, "credit", b"y")], changes(2))  # the connection is usable again
        assert [seq for seq, _, _ in store.journal_since(0, 10)] == [1, 2]
    finally:
        engine.dispose()


@pytest.mark.parametrize("fast", [False, True])
def test_a_repeated_key_in_one_batch_keeps_the_last_state(db_url: str, fast: bool) -> None:
    upgrade(db_url)
    engine = create_db_engine(db_url)
    try:
        store = TradingStore(engine, postgres_fast_path=fast)
        canceled = order(1, status=OrderStatus.CANCELED, seq=2)
        store.write_batch(
            [(1, T0, "place_order", b"")],
            changes(
                2,
                orders=[order(1), canceled],
                balances=[balance(1, "USDT", 5), balance(1, "USDT", 9, 1)],
                markets=[market(), market(taker_fee_ppm=9)],
            ),
        )
        snapshot, _ = store.load_snapshot()
        assert snapshot.open_orders == []
        assert snapshot.balances == [balance(1, "USDT", 9, 1)]
        assert snapshot.markets == [market(taker_fee_ppm=9)]
    finally:
        engine.dispose()
