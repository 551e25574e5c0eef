"""Throughput of ``TradingStore.write_batch``, the engine's hot path, on SQLite and PostgreSQL.

Each synthetic batch is what a busy engine batch of 64 commands produces: 64 journal rows, 64
order rows (32 new orders and 32 makers updated by fills), 32 trades (64 fills), 320 ledger
legs, 64 balances and the kline buckets of one minute. It prints batches/s, rows/s and
commands/s, the ratio of commands/s to the target the engine needs (thousands of orders/s),
and for PostgreSQL the ratio of the fast path (COPY + unnest upserts) to its baseline, the
portable executemany path SQLite uses.

    PYTHONPATH=src .venv/bin/python bench/store_write.py [--batches 300] [--pg-url postgresql://...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator

import psycopg
from psycopg import sql

from cambist.core.commands import CancelOrder, encode_command
from cambist.core.events import BalanceView, Changes, LedgerEntry, OrderView, Trade
from cambist.core.types import (
    Bucket,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from cambist.store.base import create_db_engine
from cambist.store.migrate import upgrade
from cambist.store.trading import JournalItem, TradingStore

COMMANDS_PER_BATCH = 64
NEW_ORDERS = 32
TRADES = 32
LEGS_PER_TRADE = 8  # buyer and seller, both assets, plus two fee legs
TARGET_ORDERS_PER_S = 5_000
T0 = 1_700_000_000_000


def _order(order_id: int, seq: int, status: OrderStatus) -> OrderView:
    return OrderView(
        order_id=order_id,
        account_id=order_id % 500,
        symbol="BTC-USDT",
        side=Side.BUY if order_id % 2 else Side.SELL,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        post_only=False,
        self_trade_prevention=SelfTradePrevention.EXPIRE_MAKER,
        client_order_id=f"c-{order_id}" if order_id % 2 else None,
        price=65_000_000_000 + order_id % 100 * 1_000_000,
        quantity=100_000,
        quote_quantity=None,
        status=status,
        filled_quantity=0 if status is OrderStatus.NEW else 50_000,
        quote_filled=0,
        fee=0,
        fee_asset="USDT",
        hold_asset="USDT",
        hold_remaining=65_000_000,
        priority=order_id,
        created_at=T0 + order_id,
        updated_at=T0 + seq,
        created_seq=order_id,
        updated_seq=seq,
    )


def _trade(trade_id: int, seq: int, maker_order_id: int, taker_order_id: int) -> Trade:
    return Trade(
        trade_id=trade_id,
        seq=seq,
        time=T0 + seq * 10,
        symbol="BTC-USDT",
        price=65_000_000_000,
        quantity=50_000,
        quote_quantity=32_500_000,
        taker_side=Side.BUY,
        maker_order_id=maker_order_id,
        taker_order_id=taker_order_id,
        maker_account_id=maker_order_id % 500,
        taker_account_id=taker_order_id % 500,
        maker_fee=32_500,
        maker_fee_asset="USDT",
        taker_fee=100,
        taker_fee_asset="BTC",
    )


def _ledger(posting_id: int, seq: int, account_id: int) -> list[LedgerEntry]:
    return [
        LedgerEntry(
            posting_id, seq, T0 + seq * 10, account_id + n % 2, "USDT", Bucket.AVAILABLE, delta, "trade", "t"
        )
        for n, delta in enumerate((-1, 1) * (LEGS_PER_TRADE // 2))
    ]


def make_batch(number: int) -> tuple[list[JournalItem], Changes]:
    """Batch ``number`` (0-based): new ids never collide with earlier batches'."""
    first_seq = number * COMMANDS_PER_BATCH + 1
    seqs = range(first_seq, first_seq + COMMANDS_PER_BATCH)
    payload = encode_command(CancelOrder(account_id=1, order_id=1))
    journal = [(seq, T0 + seq * 10, "place_order", payload) for seq in seqs]
    new_ids = range(number * NEW_ORDERS + 1, (number + 1) * NEW_ORDERS + 1)
    makers = range(max(1, new_ids[0] - NEW_ORDERS), new_ids[0])  # last batch's orders, now filled
    orders = [_order(i, first_seq, OrderStatus.NEW) for i in new_ids]
    orders += [_order(i, first_seq, OrderStatus.PARTIALLY_FILLED) for i in makers]
    trades = [_trade(number * TRADES + n + 1, seqs[n], new_ids[n], new_ids[-1]) for n in range(TRADES)]
    ledger = [leg for n, t in enumerate(trades) for leg in _ledger(t.trade_id, seqs[n], n)]
    ledger += [leg for n in range(COMMANDS_PER_BATCH - TRADES) for leg in _ledger(n, seqs[n], n)[:2]]
    balances = [BalanceView(n, "USDT", 10**12 - number, number) for n in range(COMMANDS_PER_BATCH)]
    last_seq = first_seq + COMMANDS_PER_BATCH - 1
    changes = Changes(
        last_seq=last_seq,
        last_time=T0 + last_seq * 10,
        state_hash=f"{number:064x}",
        next_order_id=new_ids[-1] + 1,
        next_trade_id=trades[-1].trade_id + 1,
        next_posting_id=number + 1,
        assets=[],
        markets=[],
        orders=orders,
        trades=trades,
        ledger=ledger,
        balances=balances,
        books_changed=["BTC-USDT"],
    )
    return journal, changes


def rows_in(journal: list[JournalItem], changes: Changes) -> int:
    kline_rows = 6  # one bucket per interval: a batch spans well under a minute
    fills = 2 * len(changes.trades)
    return (
        len(journal)
        + len(changes.orders)
        + len(changes.trades)
        + fills
        + len(changes.ledger)
        + len(changes.balances)
        + kline_rows
        + 1
    )


def run(label: str, url: str, batches: int, *, fast_path: bool = True) -> float:
    """Write ``batches`` batches into a fresh schema; print the figures, return batches/s."""
    upgrade(url)
    engine = create_db_engine(url)
    store = TradingStore(engine, postgres_fast_path=fast_path)
    prepared = [make_batch(n) for n in range(batches)]
    store.write_batch(*make_batch(batches))  # warm up: pool, statement cache
    latencies_ms: list[float] = []
    started = time.perf_counter()
    for journal, changes in prepared:
        t0 = time.perf_counter()
        store.write_batch(journal, changes)
        latencies_ms.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    engine.dispose()
    rows = rows_in(*prepared[0])
    per_s = batches / elapsed
    orders_per_s = per_s * COMMANDS_PER_BATCH
    p99 = statistics.quantiles(latencies_ms, n=100)[98]
    print(
        f"{label:<22} {per_s:8.1f} batches/s  {per_s * rows:10.0f} rows/s  "
        f"{orders_per_s:9.0f} commands/s ({orders_per_s / TARGET_ORDERS_PER_S:4.2f}x target)  "
        f"p50 {statistics.median(latencies_ms):6.2f} ms  p99 {p99:6.2f} ms  ({rows} rows/batch)"
    )
    return per_s


@contextlib.contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    name = f"cambist_bench_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    default_pg = "postgresql://postgres@127.0.0.1:5432/postgres"
    parser.add_argument("--pg-url", default=os.environ.get("CAMBIST_BENCH_PG_URL", default_pg))
    args = parser.parse_args()
    print(
        f"{COMMANDS_PER_BATCH} commands/batch: {NEW_ORDERS} new orders + "
        f"{COMMANDS_PER_BATCH - NEW_ORDERS} updated, {TRADES} trades; {args.batches} batches; "
        f"target {TARGET_ORDERS_PER_S} commands/s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite (sync FULL)", f"sqlite:///{tmp}/bench.db", args.batches)
    try:
        with scratch_postgres(args.pg_url) as url:
            baseline = run("postgresql executemany", url, args.batches, fast_path=False)
        with scratch_postgres(args.pg_url) as url:
            fast = run("postgresql copy+unnest", url, args.batches)
        print(f"postgresql fast path: {fast / baseline:.2f}x its executemany baseline")
    except psycopg.OperationalError as error:
        print(f"postgresql skipped: not reachable at {args.pg_url} ({error})")


if __name__ == "__main__":
    main()
