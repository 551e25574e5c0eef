"""The outbox: order, retries while the broker is away, overflow replayed from the store."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest

from cambist.bus.export import ExportMessage, MemoryExporter, MessageBuilder, Outbox
from cambist.core.events import BalanceView, Changes, Trade
from cambist.core.types import Side
from cambist.engine.engine import CommittedBatch
from cambist.store.exports import CommittedRows, ExportStore


def trade(trade_id: int, seq: int) -> Trade:
    return Trade(
        trade_id=trade_id,
        seq=seq,
        time=1_000 + seq,
        symbol="BTC-USDT",
        price=5_000_000,
        quantity=100,
        quote_quantity=50_000,
        taker_side=Side.BUY,
        maker_order_id=1,
        taker_order_id=2,
        maker_account_id=10,
        taker_account_id=11,
        maker_fee=0,
        maker_fee_asset="USDT",
        taker_fee=1,
        taker_fee_asset="BTC",
    )


def batch(seq: int, trades: list[Trade], balances: list[BalanceView] = ()) -> CommittedBatch:  # type: ignore[assignment]
    changes = Changes(
        last_seq=seq,
        last_time=1_000 + seq,
        state_hash="",
        next_order_id=1,
        next_trade_id=1,
        next_posting_id=1,
        assets=[],
        markets=[],
        orders=[],
        trades=trades,
        ledger=[],
        balances=list(balances),
        books_changed=[],
    )
    return CommittedBatch([], changes)


def builder() -> MessageBuilder:
    return MessageBuilder(lambda: {"BTC": 8, "USDT": 2}, lambda: {})


class FlakyExporter(MemoryExporter):
    """Fails while ``down`` is set, and once every ``fail_every`` calls."""

    def __init__(self, down: bool = False, fail_every: int = 0) -> None:
        super().__init__()
        self.down = down
        self.fail_every = fail_every
        self.calls = 0

    async def publish(self, messages: list[ExportMessage]) -> None:
        self.calls += 1
        if self.down or (self.fail_every and self.calls % self.fail_every == 0):
            raise ConnectionError("broker away")
        await super().publish(messages)


class FakeStore:
    """The committed history the outbox replays from, in memory."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.last = 0
        self.cursor: int | None = None

    def commit(self, seq: int, trades: list[Trade]) -> CommittedBatch:
        self.trades += trades
        self.last = seq
        return batch(seq, trades)

    def read_cursor(self) -> int | None:
        return self.cursor

    def write_cursor(self, seq: int) -> None:
        self.cursor = max(self.cursor or 0, seq)

    def last_seq(self) -> int:
        return self.last

    def committed_between(self, after: int, upto: int) -> CommittedRows:
        return CommittedRows(upto, [t for t in self.trades if after < t.seq <= upto], [], [])


async def until(condition: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


def trade_ids(exporter: MemoryExporter) -> list[str]:
    return [m.message_id for m in exporter.messages if m.routing_key.startswith("trade.")]


async def test_publishes_in_commit_order_with_stable_ids() -> None:
    exporter = MemoryExporter()
    outbox = Outbox(exporter, builder(), None, chunk=3)
    await outbox.start()
    balance = BalanceView(10, "USDT", 12345, 0)
    for seq in range(1, 11):
        outbox.on_commit(batch(seq, [trade(seq, seq)], [balance]))
    await until(lambda: outbox.exported_seq == 10)
    await outbox.stop()
    ids = [m.message_id for m in exporter.messages]
    assert ids == [x for seq in range(1, 11) for x in (f"trade-{seq}", f"balance-10-USDT-{seq}")]
    first = exporter.messages[0]
    assert first.routing_key == "trade.BTC-USDT"
    body = json.loads(first.body)
    assert body["id"] == "trade-1" and body["takerFee"] == "0.00000001" and body["takerFeeAsset"] == "BTC"
    assert exporter.messages[1].routing_key == "balance.10"
    assert json.loads(exporter.messages[1].body)["available"] == "123.45"


async def test_retries_while_the_broker_is_away_and_loses_nothing() -> None:
    exporter = FlakyExporter(down=True, fail_every=3)
    outbox = Outbox(exporter, builder(), None, chunk=2, backoff_s=(0.01, 0.02))
    await outbox.start()
    for seq in range(1, 21):
        outbox.on_commit(batch(seq, [trade(seq, seq)]))
    await asyncio.sleep(0.1)
    assert exporter.messages == [] and outbox.pending() == 20  # trading went on meanwhile
    exporter.down = False
    await until(lambda: outbox.exported_seq == 20)
    await outbox.stop()
    assert trade_ids(exporter) == [f"trade-{seq}" for seq in range(1, 21)]  # in order, no loss


async def test_overflow_is_replayed_from_the_store() -> None:
    store = FakeStore()
    exporter = FlakyExporter(down=True)
    outbox = Outbox(
        exporter, builder(), cast(ExportStore, store), max_messages=5, chunk=4, backoff_s=(0.01, 0.02)
    )
    await outbox.start()
    await until(lambda: store.cursor == 0)  # first run: the cursor starts at the store's seq
    for seq in range(1, 31):
        outbox.on_commit(store.commit(seq, [trade(seq, seq)]))
    assert outbox.dropped_batches == 25 and outbox.pending() == 5  # bounded memory
    await asyncio.sleep(0.05)
    exporter.down = False
    await until(lambda: outbox.exported_seq == 30)
    await outbox.stop()
    ids = trade_ids(exporter)
    assert set(ids) == {f"trade-{seq}" for seq in range(1, 31)}  # at least once
    assert store.cursor == 30


async def test_restart_replays_after_the_stored_cursor() -> None:
    store = FakeStore()
    first = FlakyExporter(down=True)
    outbox = Outbox(first, builder(), cast(ExportStore, store), backoff_s=(0.01, 0.02))
    await outbox.start()
    await until(lambda: store.cursor == 0)
    for seq in range(1, 4):
        outbox.on_commit(store.commit(seq, [trade(seq, seq)]))
    await outbox.stop(flush_timeout_s=0.05)  # the broker never answered
    assert store.cursor == 0

    second = MemoryExporter()
    outbox = Outbox(second, builder(), cast(ExportStore, store), backoff_s=(0.01, 0.02))
    await outbox.start()
    await until(lambda: outbox.exported_seq == 3)
    outbox.on_commit(store.commit(4, [trade(4, 4)]))
    await until(lambda: outbox.exported_seq == 4)
    await outbox.stop()
    assert trade_ids(second) == ["trade-1", "trade-2", "trade-3", "trade-4"]
    assert store.cursor == 4


async def test_engine_recovery_triggers_a_replay() -> None:
    store = FakeStore()
    store.cursor = 0
    exporter = MemoryExporter()
    outbox = Outbox(exporter, builder(), cast(ExportStore, store), backoff_s=(0.01, 0.02))
    await outbox.start()
    store.commit(1, [trade(1, 1)])  # committed, but its batch was never published (lost answer)
    await asyncio.sleep(0.05)
    outbox.on_recovered(None)
    await until(lambda: outbox.exported_seq == 1)
    await outbox.stop()
    assert trade_ids(exporter) == ["trade-1"]


@pytest.mark.parametrize("units,scale,text", [(0, 2, "0"), (150, 2, "1.5"), (123, 0, "123"), (7, None, 7)])
def test_amount_format(units: int, scale: int | None, text: str | int) -> None:
    from cambist.bus.export import _fmt

    assert _fmt(units, scale) == text
