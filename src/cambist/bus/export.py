"""Event export: trades, order updates and balance changes to a message broker, at least once.

The engine subscriber (``Outbox.on_commit``) only turns a committed batch into messages and
appends them to a bounded in-memory queue: it never waits and never blocks the engine. A
background task publishes the queue in order through an ``EventExporter`` (RabbitMQ in
production, ``cambist.bus.rabbitmq``), waits for the broker's confirms, retries with backoff
while the broker is away, and after each confirmed publish stores the last exported engine
sequence number (``export_cursor``).

At least once across restarts and overflows: at start, after the queue overflowed (the
oldest batches were dropped from memory) and after the engine rebuilt its core (a batch whose
commit answer was lost is never published to subscribers), the outbox rebuilds the messages
of every batch after the cursor from the committed rows and publishes them before the live
ones. Duplicates are possible; every message carries a stable id (AMQP ``message_id`` and
``id`` in the body) so consumers deduplicate:

- ``trade-<tradeId>``, routing key ``trade.<SYMBOL>``;
- ``order-<orderId>-<updatedSeq>``, routing key ``order.<userId>``;
- ``balance-<userId>-<asset>-<seq>``, routing key ``balance.<userId>``.

What a replay rebuilds: every trade; for orders and balances only their latest state (the
rows keep no history), with the same id as the live message when that state is the one the
live message carried. So after a restart a consumer may miss an intermediate order or balance
state, never the final one nor any trade. Within one batch the engine already reports one
state per order and per balance (the last one), live or replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from cambist.core.events import BalanceView, OrderView, Trade
from cambist.core.numbers import format_units
from cambist.engine.engine import CommittedBatch
from cambist.store.exports import CommittedRows, ExportStore

log = logging.getLogger(__name__)

EXCHANGE = "cambist.events"


@dataclass(frozen=True, slots=True)
class ExportMessage:
    message_id: str
    routing_key: str
    body: bytes


class EventExporter(Protocol):
    async def publish(self, messages: list[ExportMessage]) -> None:
        """Publish in order; return only once the broker confirmed every message, else raise."""

    async def close(self) -> None: ...


class MemoryExporter:
    """Keeps what it was given, for tests."""

    def __init__(self) -> None:
        self.messages: list[ExportMessage] = []

    async def publish(self, messages: list[ExportMessage]) -> None:
        self.messages.extend(messages)

    async def close(self) -> None:
        pass


# ------------------------------------------------------------------------- messages

_encoder = msgspec.json.Encoder()


def _fmt(units: int | None, scale: int | None) -> str | int | None:
    """A decimal string as the REST API writes it, when the asset's scale is known (it always
    is for live assets); the integer units otherwise."""
    if units is None or scale is None:
        return units
    return format_units(units, scale)


class MessageBuilder:
    """Event messages from core views; amounts as decimal strings like the REST API."""

    def __init__(
        self, scales: Callable[[], Mapping[str, int]], markets: Callable[[], Mapping[str, Any]]
    ) -> None:
        self._scales = scales
        self._markets = markets  # symbol -> MarketView (base_asset, quote_asset)

    def _pair(self, symbol: str) -> tuple[int | None, int | None]:
        market = self._markets().get(symbol)
        scales = self._scales()
        if market is None:
            return None, None
        return scales.get(market.base_asset), scales.get(market.quote_asset)

    def trade(self, trade: Trade) -> ExportMessage:
        base, quote = self._pair(trade.symbol)
        scales = self._scales()
        message_id = f"trade-{trade.trade_id}"
        body = {
            "id": message_id,
            "type": "trade",
            "seq": trade.seq,
            "time": trade.time,
            "tradeId": trade.trade_id,
            "symbol": trade.symbol,
            "price": _fmt(trade.price, quote),
            "quantity": _fmt(trade.quantity, base),
            "quoteQuantity": _fmt(trade.quote_quantity, quote),
            "takerSide": trade.taker_side.value,
            "makerOrderId": trade.maker_order_id,
            "takerOrderId": trade.taker_order_id,
            "makerUserId": trade.maker_account_id,
            "takerUserId": trade.taker_account_id,
            "makerFee": _fmt(trade.maker_fee, scales.get(trade.maker_fee_asset)),
            "makerFeeAsset": trade.maker_fee_asset,
            "takerFee": _fmt(trade.taker_fee, scales.get(trade.taker_fee_asset)),
            "takerFeeAsset": trade.taker_fee_asset,
        }
        return ExportMessage(message_id, f"trade.{trade.symbol}", _encoder.encode(body))

    def order(self, order: OrderView) -> ExportMessage:
        base, quote = self._pair(order.symbol)
        message_id = f"order-{order.order_id}-{order.updated_seq}"
        body = {
            "id": message_id,
            "type": "order",
            "seq": order.updated_seq,
            "time": order.updated_at,
            "userId": order.account_id,
            "orderId": order.order_id,
            "clientOrderId": order.client_order_id,
            "symbol": order.symbol,
            "side": order.side.value,
            "orderType": order.order_type.value,
            "timeInForce": order.time_in_force.value,
            "status": order.status.value,
            "price": _fmt(order.price, quote),
            "quantity": _fmt(order.quantity, base),
            "quoteQuantity": _fmt(order.quote_quantity, quote),
            "filledQuantity": _fmt(order.filled_quantity, base),
            "quoteFilled": _fmt(order.quote_filled, quote),
            "fee": _fmt(order.fee, self._scales().get(order.fee_asset)),
            "feeAsset": order.fee_asset,
            "createdAt": order.created_at,
            "updatedAt": order.updated_at,
        }
        return ExportMessage(message_id, f"order.{order.account_id}", _encoder.encode(body))

    def balance(self, balance: BalanceView, seq: int) -> ExportMessage:
        scale = self._scales().get(balance.asset)
        message_id = f"balance-{balance.account_id}-{balance.asset}-{seq}"
        body = {
            "id": message_id,
            "type": "balance",
            "seq": seq,
            "userId": balance.account_id,
            "asset": balance.asset,
            "available": _fmt(balance.available, scale),
            "locked": _fmt(balance.locked, scale),
        }
        return ExportMessage(message_id, f"balance.{balance.account_id}", _encoder.encode(body))

    def of_views(
        self,
        trades: Iterable[Trade],
        orders: Iterable[OrderView],
        balances: Iterable[tuple[BalanceView, int]],
    ) -> list[ExportMessage]:
        """Trades, then order updates, then balances: a consumer sees the fill before the
        order state that counts it."""
        messages = [self.trade(trade) for trade in trades]
        messages += [self.order(order) for order in orders]
        messages += [self.balance(balance, seq) for balance, seq in balances]
        return messages

    def of_batch(self, batch: CommittedBatch) -> list[ExportMessage]:
        changes = batch.changes
        balances = [(balance, changes.last_seq) for balance in changes.balances]
        return self.of_views(changes.trades, changes.orders, balances)

    def of_rows(self, rows: CommittedRows) -> list[ExportMessage]:
        return self.of_views(rows.trades, rows.orders, rows.balances)


# ------------------------------------------------------------------------- outbox


@dataclass(frozen=True, slots=True)
class _Batch:
    seq: int
    messages: list[ExportMessage]


class Outbox:
    """Bounded, ordered, at-least-once publishing of committed batches (see the module doc).

    ``store`` is ``None`` only in tests that need no durability (no cursor, no replay).
    """

    def __init__(
        self,
        exporter: EventExporter,
        builder: MessageBuilder,
        store: ExportStore | None,
        *,
        max_messages: int = 100_000,
        chunk: int = 500,
        replay_page_seqs: int = 5_000,
        backoff_s: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        self._exporter = exporter
        self._builder = builder
        self._store = store
        self._max_messages = max_messages
        self._chunk = chunk
        self._page = replay_page_seqs
        self._backoff = backoff_s
        self._queue: deque[_Batch] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The store holds batches the queue does not: replay them (at start, after an overflow
        # or an engine recovery). Without a store nothing can be replayed.
        self._gap = store is not None
        self.exported_seq = 0  # everything up to here is confirmed by the broker
        self.dropped_batches = 0
        self.published = 0

    # -- engine side: never blocks

    def on_commit(self, batch: CommittedBatch) -> None:
        messages = self._builder.of_batch(batch)
        if not messages:
            return
        self._queue.append(_Batch(batch.changes.last_seq, messages))
        self._queued += len(messages)
        while self._queued > self._max_messages and len(self._queue) > 1:
            dropped = self._queue.popleft()
            self._queued -= len(dropped.messages)
            self.dropped_batches += 1
            if not self._gap:
                log.warning("event export queue full: dropping from memory, will replay from the store")
            self._gap = self._store is not None
        self._wake.set()

    def on_recovered(self, _core: object) -> None:
        """The engine rebuilt its core: a committed batch may never have been published."""
        if self._store is not None:
            self._gap = True
            self._wake.set()

    def pending(self) -> int:
        return self._queued

    # -- lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cambist-export")

    async def stop(self, flush_timeout_s: float = 2.0) -> None:
        """Publish what is queued if the broker answers soon; whatever is left is replayed
        from the store at the next start."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle(), flush_timeout_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._exporter.close()

    async def _idle(self) -> None:
        while self._queue or self._gap:
            await asyncio.sleep(0.02)

    # -- the publishing task

    async def _run(self) -> None:
        delay = self._backoff[0]
        while True:
            try:
                if self._gap:
                    await self._replay()
                elif self._queue:
                    await self._publish_queued()
                else:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                delay = self._backoff[0]
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("event export failed (%s); retrying in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])

    async def _publish_queued(self) -> None:
        chunk: list[_Batch] = []
        count = 0
        for batch in self._queue:
            if batch.seq <= self.exported_seq:  # already covered by a replay
                continue
            chunk.append(batch)
            count += len(batch.messages)
            if count >= self._chunk:
                break
        if chunk:
            await self._exporter.publish([m for batch in chunk for m in batch.messages])
            self.published += count
            await self._confirmed(chunk[-1].seq)
        else:
            await self._confirmed(self.exported_seq)

    async def _confirmed(self, seq: int) -> None:
        self.exported_seq = max(self.exported_seq, seq)
        # Forget what is confirmed. Checked by seq, not by position: an overflow may have
        # dropped batches from the left meanwhile.
        while self._queue and self._queue[0].seq <= self.exported_seq:
            self._queued -= len(self._queue.popleft().messages)
        if self._store is not None:
            try:
                await asyncio.to_thread(self._store.write_cursor, self.exported_seq)
            except Exception as error:  # published anyway: the worst case is a duplicate
                log.warning("could not store the event export cursor (%s)", error)

    async def _replay(self) -> None:
        """Publish what the store committed after the cursor, page by page, then go live."""
        assert self._store is not None
        store = self._store
        self._gap = False  # set again by an overflow or a recovery during the replay
        try:
            cursor = await asyncio.to_thread(store.read_cursor)
            if cursor is None:
                # First run on this store: export from now on, not the whole history.
                cursor = await asyncio.to_thread(store.last_seq)
                if self._queue:  # batches committed since the outbox started are still exported
                    cursor = min(cursor, self._queue[0].seq - 1)
                await asyncio.to_thread(store.write_cursor, cursor)
            self.exported_seq = max(self.exported_seq, cursor)
            after = cursor
            while True:
                last = await asyncio.to_thread(store.last_seq)
                if after >= last:
                    break
                upto = min(last, after + self._page)
                rows = await asyncio.to_thread(store.committed_between, after, upto)
                messages = self._builder.of_rows(rows)
                for start in range(0, len(messages), self._chunk):
                    await self._exporter.publish(messages[start : start + self._chunk])
                self.published += len(messages)
                if messages:
                    log.info("event export replayed %d messages up to seq %d", len(messages), upto)
                await self._confirmed(upto)
                after = upto
        except BaseException:
            self._gap = True
            raise
