"""The Binance stream fan-out: every committed batch as Binance market and user-data events.

``BinanceStreamHub`` is an engine subscriber like the native ``cambist.stream.fanout.StreamHub``
but with Binance's event shapes (binance-compat.md §4). It is made on first use by a Binance
WebSocket (``hub_of(runtime)``) and kept on the runtime: it subscribes to ``runtime.link`` then
(after the native hub and the market-data hub, so ``runtime.hub`` already shows each batch) and
loads the last depth of every book from ``runtime.hub`` in the same step, with no ``await`` in
between, so no batch falls between the two.

Order books (``<sym>@depth``, ``@depth@100ms``, ``@depth@1000ms``). Update ids are Cambist
sequence numbers: a book's snapshot carries the sequence of the last batch that changed it,
which is also ``lastUpdateId`` of ``GET /api/v3/depth``. Each ``depthUpdate`` diffs the last
snapshot sent against the new one with ``U`` = previous sequence + 1 and ``u`` = new sequence,
so consecutive diffs chain (``U == prev_u + 1``) and a REST snapshot taken any time between two
diffs satisfies ``U <= lastUpdateId + 1 <= u`` for the next one. After a reload
(``link.on_state``) the difference from the last book sent goes out as one more diff. All
depth streams are sent per batch (at most as fast as the engine commits, never slower than
Binance's 100 ms / 1000 ms). ``@depth<N>`` (5, 10, 20) sends the top levels when they change.

24 h statistics (``@ticker``, ``@miniTicker``, the ``!…@arr`` streams): a rolling window of
1-minute buckets per symbol (at most 1441 buckets), the same definition as the native
``GET /api/v1/ticker`` (``TradingQueries.ticker_window``: the 1m klines opened in the last
24 h). It is seeded once from the store's 1m klines when the hub starts, then kept up to date
from each batch's trades; trades committed while the seed is read are applied on top when
their id is above the store's last trade id at seeding time. Klines (``@kline_<interval>``,
every Binance interval from 1s to 1M) are built the same way: the current candle of each
interval is seeded from those buckets (1d klines for 3d, 1w and 1M) and moved by the trades.
A 1s candle and the taker-buy volumes (``V``, ``Q``) and first/last trade ids cover trades
since the hub started only. Tickers are sent after each batch with trades on the symbol.

User data (``executionReport``, ``outboundAccountPosition``, ``balanceUpdate``) comes from the
batch's changes, never from its commands or outcomes (gateways receive batches without them,
``bus.wire``): orders touched (latest state), trades, balances, and the ledger, whose
``credit`` entries are the deposits. ``bus.wire.EventBatch`` leaves the ledger in the engine,
so behind a gateway there is no ``balanceUpdate`` (``outboundAccountPosition`` still shows the
new balance) until the wire carries the credit entries. A new order gives ``NEW``, each of
its trades in the batch ``TRADE`` (``z``/``Z`` counted back from its final state), and a final
state other than filled ``CANCELED``, ``EXPIRED`` or ``REJECTED``.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import datetime
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from cambist.api.runtime import Runtime
from cambist.binance import orders_view
from cambist.binance.context import symbols
from cambist.binance.present import fmt
from cambist.core.events import BalanceView, LedgerEntry, MarketView, OrderView, Trade
from cambist.core.types import Bucket, OrderStatus, SelfTradePrevention, Side
from cambist.engine.engine import CommittedBatch, DepthSnapshot
from cambist.engine.link import MarketState
from cambist.store.queries import Kline

log = logging.getLogger(__name__)

_HUB_ATTRIBUTE = "_binance_stream_hub"
_encode = msgspec.json.Encoder().encode

WINDOW_MS = 86_400_000
BUCKET_MS = 60_000
SEED_TIMEOUT_S = 10.0
PARTIAL_DEPTHS = (5, 10, 20)
DAY_MS = 86_400_000
_WEEK_OFFSET_MS = 4 * DAY_MS  # 1970-01-01 was a Thursday; Binance weeks open on Monday

# Binance's intervals of a fixed length; "1M" is the calendar month.
FIXED_INTERVALS_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 3 * 60_000,
    "5m": 5 * 60_000,
    "15m": 15 * 60_000,
    "30m": 30 * 60_000,
    "1h": 3_600_000,
    "2h": 2 * 3_600_000,
    "4h": 4 * 3_600_000,
    "6h": 6 * 3_600_000,
    "8h": 8 * 3_600_000,
    "12h": 12 * 3_600_000,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
}
INTERVALS: tuple[str, ...] = (*FIXED_INTERVALS_MS, "1M")

_STATUS = {
    OrderStatus.UNTRIGGERED: "NEW",
    OrderStatus.NEW: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.REJECTED: "REJECTED",
    OrderStatus.EXPIRED: "EXPIRED",
}
_FINAL_EVENTS = {
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.EXPIRED: "EXPIRED",
    OrderStatus.REJECTED: "REJECTED",
}
_OPEN = frozenset({OrderStatus.UNTRIGGERED, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED})
_STP = {
    SelfTradePrevention.EXPIRE_TAKER: "EXPIRE_TAKER",
    SelfTradePrevention.EXPIRE_MAKER: "EXPIRE_MAKER",
    SelfTradePrevention.EXPIRE_BOTH: "EXPIRE_BOTH",
}


def encode(value: Any) -> str:
    return _encode(value).decode()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Deliverable(Protocol):
    def deliver(self, frame: str) -> None: ...


class Sink:
    """One subscription of one connection: wraps each event the way the connection wants it
    (raw on ``/ws``, ``{"stream","data"}`` on ``/stream``, ``{"subscriptionId","event"}`` on
    the WS-API)."""

    __slots__ = ("connection", "prefix", "suffix")

    def __init__(self, connection: Deliverable, prefix: str = "", suffix: str = "") -> None:
        self.connection = connection
        self.prefix = prefix
        self.suffix = suffix

    def deliver(self, frame: str) -> None:
        if self.prefix:
            self.connection.deliver(self.prefix + frame + self.suffix)
        else:
            self.connection.deliver(frame)


def open_time(interval: str, t: int) -> int:
    if interval == "1M":
        moment = datetime.datetime.fromtimestamp(t / 1000, tz=datetime.UTC)
        return calendar.timegm((moment.year, moment.month, 1, 0, 0, 0)) * 1000
    length = FIXED_INTERVALS_MS[interval]
    if interval == "1w":
        return t - (t - _WEEK_OFFSET_MS) % length
    return t - t % length


def close_time(interval: str, opened: int) -> int:
    if interval == "1M":
        moment = datetime.datetime.fromtimestamp(opened / 1000, tz=datetime.UTC)
        year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000 - 1
    return opened + FIXED_INTERVALS_MS[interval] - 1


class _Candle:
    """A kline, or one 1-minute bucket of the 24 h window."""

    __slots__ = (
        "buy_quote",
        "buy_volume",
        "close",
        "close_time",
        "count",
        "first_id",
        "high",
        "last_id",
        "last_quantity",
        "low",
        "open",
        "open_time",
        "quote_volume",
        "volume",
    )

    def __init__(self, opened: int, price: int, closes: int | None = None) -> None:
        self.open_time = opened
        self.close_time = closes if closes is not None else opened + BUCKET_MS - 1
        self.open = self.high = self.low = self.close = price
        self.volume = self.quote_volume = self.count = 0
        self.buy_volume = self.buy_quote = 0
        self.first_id = self.last_id = -1
        self.last_quantity = 0

    @classmethod
    def of_kline(cls, opened: int, row: Kline, closes: int | None = None) -> _Candle:
        candle = cls(opened, row.open, closes)
        candle.merge(row)
        return candle

    def merge(self, row: Kline) -> None:
        """Add a stored kline that opened within this candle (oldest first)."""
        if self.count == 0 and self.volume == 0:
            self.open = self.high = self.low = row.open
        self.high = max(self.high, row.high)
        self.low = min(self.low, row.low)
        self.close = row.close
        self.volume += row.volume
        self.quote_volume += row.quote_volume
        self.count += row.trade_count

    def add(self, trade: Trade) -> None:
        self.high = max(self.high, trade.price)
        self.low = min(self.low, trade.price)
        self.close = trade.price
        self.volume += trade.quantity
        self.quote_volume += trade.quote_quantity
        self.count += 1
        self.last_quantity = trade.quantity
        if trade.taker_side is Side.BUY:
            self.buy_volume += trade.quantity
            self.buy_quote += trade.quote_quantity
        if self.first_id < 0:
            self.first_id = trade.trade_id
        self.last_id = trade.trade_id


class _Window:
    """The last 24 h of one symbol in 1-minute buckets, oldest first."""

    __slots__ = ("buckets", "count", "last_quantity", "quote_volume", "volume")

    def __init__(self) -> None:
        self.buckets: deque[_Candle] = deque()
        self.volume = self.quote_volume = self.count = 0
        self.last_quantity = 0

    def seed(self, row: Kline) -> None:
        bucket = _Candle.of_kline(row.open_time, row)
        self.buckets.append(bucket)
        self.volume += bucket.volume
        self.quote_volume += bucket.quote_volume
        self.count += bucket.count

    def add(self, trade: Trade) -> None:
        opened = trade.time - trade.time % BUCKET_MS
        last = self.buckets[-1] if self.buckets else None
        if last is None or last.open_time < opened:
            last = _Candle(opened, trade.price)
            self.buckets.append(last)
        elif last.open_time > opened:
            return  # older than the newest bucket: never from the engine
        last.add(trade)
        self.volume += trade.quantity
        self.quote_volume += trade.quote_quantity
        self.count += 1
        self.last_quantity = trade.quantity

    def expire(self, now: int) -> None:
        start = now - WINDOW_MS
        buckets = self.buckets
        while buckets and buckets[0].open_time < start:
            gone = buckets.popleft()
            self.volume -= gone.volume
            self.quote_volume -= gone.quote_volume
            self.count -= gone.count


@dataclass(slots=True)
class _Scales:
    name: str  # BTCUSDT
    lower: str  # btcusdt
    base: int
    quote: int


class BinanceStreamHub:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.hub = runtime.hub
        self._sinks: dict[str, dict[Sink, None]] = {}  # stream name -> sinks
        self._users: dict[int, dict[Sink, None]] = {}  # account id -> sinks
        self._depth: dict[str, DepthSnapshot] = {}
        self._windows: dict[str, _Window] = {}
        self._candles: dict[tuple[str, str], _Candle] = {}
        self._scales: dict[str, _Scales] = {}
        self._markets_key: tuple[str, ...] = ()
        self._last_seq = 0
        self._seeding: list[Trade] | None = []  # trades seen while the seed is read
        self._seed_last_ids: dict[str, int] = {}
        self.seeded = asyncio.Event()
        self._seed_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        """Subscribe and load the books in one step (no batch can come between)."""
        self._depth = {symbol: self.hub.depth(symbol) for symbol in self.hub.markets}
        self._last_seq = self.runtime.link.last_seq
        self.runtime.link.subscribe(self.on_commit)
        self.runtime.link.on_state(self.on_state)
        self._seed_task = asyncio.get_running_loop().create_task(self._seed(), name="binance-stream-seed")

    async def wait_seeded(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.seeded.wait(), SEED_TIMEOUT_S)

    async def _seed(self) -> None:
        try:
            now = now_ms()
            seed = await self.runtime.read(_read_seed, self.runtime, list(self.hub.markets), now)
            self._apply_seed(seed, now)
        except Exception:  # the streams still work, with statistics since the start
            log.exception("could not seed the Binance tickers and klines from the store")
        finally:
            pending, self._seeding = self._seeding or [], None
            last_ids = self._seed_last_ids
            for trade in pending:
                if trade.trade_id > last_ids.get(trade.symbol, -1):
                    self._account_trade(trade)
            self.seeded.set()

    def _apply_seed(self, seed: dict[str, tuple[int, list[Kline], list[Kline]]], now: int) -> None:
        self._seed_last_ids = {symbol: last for symbol, (last, _, _) in seed.items()}
        for symbol, (_, minutes, days) in seed.items():
            window = self._windows.setdefault(symbol, _Window())
            for row in minutes:
                window.seed(row)
            window.expire(now)
            for interval in INTERVALS:
                if interval == "1s":
                    continue
                opened = open_time(interval, now)
                rows = days if interval in ("3d", "1w", "1M") else minutes
                candle: _Candle | None = None
                for row in rows:
                    if row.open_time < opened:
                        continue
                    if candle is None:
                        candle = _Candle.of_kline(opened, row, close_time(interval, opened))
                    else:
                        candle.merge(row)
                if candle is not None:
                    self._candles[(symbol, interval)] = candle

    # ------------------------------------------------------------------ subscriptions

    def subscribe(self, stream: str, sink: Sink) -> None:
        self._sinks.setdefault(stream, {})[sink] = None

    def unsubscribe(self, stream: str, sink: Sink) -> None:
        sinks = self._sinks.get(stream)
        if sinks is not None:
            sinks.pop(sink, None)
            if not sinks:
                del self._sinks[stream]

    def subscribe_user(self, account_id: int, sink: Sink) -> None:
        self._users.setdefault(account_id, {})[sink] = None

    def unsubscribe_user(self, account_id: int, sink: Sink) -> None:
        sinks = self._users.get(account_id)
        if sinks is not None:
            sinks.pop(sink, None)
            if not sinks:
                del self._users[account_id]

    def sink_count(self) -> int:
        return sum(len(s) for s in self._sinks.values()) + sum(len(s) for s in self._users.values())

    def _send(self, stream: str, frame: str) -> None:
        sinks = self._sinks.get(stream)
        if sinks:
            for sink in tuple(sinks):  # deliver may drop a slow connection, which unsubscribes
                sink.deliver(frame)

    def _wanted(self, stream: str) -> bool:
        return stream in self._sinks

    # ------------------------------------------------------------------ names

    def scales(self, symbol: str) -> _Scales | None:
        markets = self.hub.markets
        if len(markets) != len(self._markets_key) or symbol not in self._scales:
            key = tuple(sorted(markets))
            if key != self._markets_key:
                self._markets_key = key
                names = symbols(self.runtime)
                assets = self.hub.assets
                self._scales = {}
                for name, market_symbol in names.all().items():
                    market: MarketView = markets[market_symbol]
                    self._scales[market_symbol] = _Scales(
                        name, name.lower(), assets[market.base_asset], assets[market.quote_asset]
                    )
        return self._scales.get(symbol)

    # ------------------------------------------------------------------ engine side

    def on_state(self, _state: MarketState) -> None:
        """The hub reloaded: send what changed in every book as one more diff."""
        now = now_ms()
        self._publish_books((self.hub.depth(symbol) for symbol in self.hub.markets), now)

    def on_commit(self, batch: CommittedBatch) -> None:
        changes = batch.changes
        first_seq = batch.first_seq or self._last_seq + 1
        self._last_seq = changes.last_seq
        now = changes.last_time or now_ms()
        for market in changes.markets:  # a new market's book starts empty, as runtime.hub's
            if market.symbol not in self._depth:
                self._depth[market.symbol] = DepthSnapshot(market.symbol, changes.last_seq, [], [])
        if batch.depth:
            self._publish_books(batch.depth.values(), now)
        if changes.trades:
            self._publish_trades(changes.trades, now)
        if self._users and (changes.orders or changes.balances or changes.ledger):
            self._publish_users(
                changes.orders, changes.trades, changes.balances, changes.ledger, first_seq, now
            )

    # ------------------------------------------------------------------ books

    def _publish_books(self, snapshots: Iterable[DepthSnapshot], now: int) -> None:
        for new in snapshots:
            symbol = new.symbol
            previous = self._depth.get(symbol)
            self._depth[symbol] = new
            if previous is None or new == previous:
                continue
            s = self.scales(symbol)
            if s is None:
                continue
            diff_streams = [
                name
                for name in (f"{s.lower}@depth", f"{s.lower}@depth@100ms", f"{s.lower}@depth@1000ms")
                if name in self._sinks
            ]
            if diff_streams and new.sequence > previous.sequence:
                frame = encode(
                    {
                        "e": "depthUpdate",
                        "E": now,
                        "s": s.name,
                        "U": previous.sequence + 1,
                        "u": new.sequence,
                        "b": _diff(previous.bids, new.bids, s, reverse=True),
                        "a": _diff(previous.asks, new.asks, s, reverse=False),
                    }
                )
                for name in diff_streams:
                    self._send(name, frame)
            for levels in PARTIAL_DEPTHS:
                names = [
                    n
                    for n in (f"{s.lower}@depth{levels}", f"{s.lower}@depth{levels}@100ms")
                    if n in self._sinks
                ]
                if not names:
                    continue
                if (
                    new.bids[:levels] == previous.bids[:levels]
                    and new.asks[:levels] == previous.asks[:levels]
                ):
                    continue
                frame = encode(
                    {
                        "lastUpdateId": new.sequence,
                        "bids": _levels(new.bids[:levels], s),
                        "asks": _levels(new.asks[:levels], s),
                    }
                )
                for name in names:
                    self._send(name, frame)
            name = f"{s.lower}@bookTicker"
            if name in self._sinks and (
                new.bids[:1] != previous.bids[:1] or new.asks[:1] != previous.asks[:1]
            ):
                self._send(name, encode(book_ticker(new, s)))

    # ------------------------------------------------------------------ trades, klines, tickers

    def _account_trade(self, trade: Trade) -> None:
        symbol = trade.symbol
        window = self._windows.get(symbol)
        if window is None:
            window = self._windows[symbol] = _Window()
        window.add(trade)
        at = trade.time
        candles = self._candles
        for interval in INTERVALS:
            key = (symbol, interval)
            candle = candles.get(key)
            if candle is None or at > candle.close_time:
                opened = open_time(interval, at)
                candle = candles[key] = _Candle(opened, trade.price, close_time(interval, opened))
            elif at < candle.open_time:
                continue  # older than the current candle: never from the engine
            candle.add(trade)

    def _publish_trades(self, trades: list[Trade], now: int) -> None:
        by_symbol: dict[str, list[Trade]] = {}
        for trade in trades:
            by_symbol.setdefault(trade.symbol, []).append(trade)
        mini_all: list[dict[str, Any]] = []
        full_all: list[dict[str, Any]] = []
        want_mini_all = self._wanted("!miniTicker@arr")
        want_full_all = self._wanted("!ticker@arr")
        for symbol, rows in by_symbol.items():
            if self._seeding is not None:
                self._seeding.extend(rows)
            else:
                for trade in rows:
                    self._account_trade(trade)
            s = self.scales(symbol)
            if s is None:
                continue
            trade_stream, agg_stream = f"{s.lower}@trade", f"{s.lower}@aggTrade"
            if trade_stream in self._sinks or agg_stream in self._sinks:
                for trade in rows:
                    if trade_stream in self._sinks:
                        self._send(trade_stream, encode(trade_event(trade, s, now)))
                    if agg_stream in self._sinks:
                        self._send(agg_stream, encode(agg_trade_event(trade, s, now)))
            for interval in INTERVALS:
                stream = f"{s.lower}@kline_{interval}"
                if stream not in self._sinks:
                    continue
                candle = self._candles.get((symbol, interval))
                if candle is not None:
                    self._send(stream, encode(kline_event(candle, interval, s, now)))
            mini_stream, full_stream = f"{s.lower}@miniTicker", f"{s.lower}@ticker"
            want_mini = mini_stream in self._sinks
            want_full = full_stream in self._sinks
            if not (want_mini or want_full or want_mini_all or want_full_all):
                continue
            window = self._windows.get(symbol)
            if window is None:
                continue
            window.expire(now)
            if not window.buckets:
                continue
            if want_mini or want_mini_all:
                mini = mini_ticker_event(window, s, now)
                if want_mini:
                    self._send(mini_stream, encode(mini))
                if want_mini_all:
                    mini_all.append(mini)
            if want_full or want_full_all:
                full = ticker_event(window, self._depth.get(symbol), s, now)
                if want_full:
                    self._send(full_stream, encode(full))
                if want_full_all:
                    full_all.append(full)
        if mini_all:
            self._send("!miniTicker@arr", encode(mini_all))
        if full_all:
            self._send("!ticker@arr", encode(full_all))

    # ------------------------------------------------------------------ user data

    def _publish_users(
        self,
        orders: list[OrderView],
        trades: list[Trade],
        balances: list[BalanceView],
        ledger: list[LedgerEntry],
        first_seq: int,
        now: int,
    ) -> None:
        users = self._users
        fills: dict[int, list[tuple[Trade, bool]]] = {}  # order id -> (trade, is maker)
        for trade in trades:
            if trade.taker_account_id in users:
                fills.setdefault(trade.taker_order_id, []).append((trade, False))
            if trade.maker_account_id in users:
                fills.setdefault(trade.maker_order_id, []).append((trade, True))
        for order in orders:
            if order.account_id not in users:
                continue
            s = self.scales(order.symbol)
            if s is None:
                continue
            for event in execution_reports(
                order, fills.get(order.order_id, ()), first_seq, s, self.hub.assets, now
            ):
                self._send_user(order.account_id, encode(event))
        for entry in ledger:
            if entry.kind == "credit" and entry.bucket is Bucket.AVAILABLE and entry.account_id in users:
                scale = self.hub.assets.get(entry.asset, 8)
                event = {
                    "e": "balanceUpdate",
                    "E": now,
                    "a": entry.asset,
                    "d": fmt(entry.delta, scale),
                    "T": entry.time,
                }
                self._send_user(entry.account_id, encode(event))
        by_account: dict[int, list[BalanceView]] = {}
        for balance in balances:
            if balance.account_id in users:
                by_account.setdefault(balance.account_id, []).append(balance)
        for account_id, rows in by_account.items():
            assets = self.hub.assets
            event = {
                "e": "outboundAccountPosition",
                "E": now,
                "u": now,
                "B": [
                    {
                        "a": b.asset,
                        "f": fmt(b.available, assets.get(b.asset, 8)),
                        "l": fmt(b.locked, assets.get(b.asset, 8)),
                    }
                    for b in rows
                ],
            }
            self._send_user(account_id, encode(event))

    def _send_user(self, account_id: int, frame: str) -> None:
        sinks = self._users.get(account_id)
        if sinks:
            for sink in tuple(sinks):
                sink.deliver(frame)


# ---------------------------------------------------------------------- the hub of a runtime


def hub_of(runtime: Runtime) -> BinanceStreamHub:
    """The runtime's Binance stream hub, started on first use (on the event loop)."""
    hub: BinanceStreamHub | None = getattr(runtime, _HUB_ATTRIBUTE, None)
    if hub is None:
        hub = BinanceStreamHub(runtime)
        setattr(runtime, _HUB_ATTRIBUTE, hub)
        hub.start()
    return hub


def _read_seed(
    runtime: Runtime, markets: list[str], now: int
) -> dict[str, tuple[int, list[Kline], list[Kline]]]:
    """Per symbol: the last trade id, the 1m klines of the last 24 h, the 1d klines of the
    last 5 weeks (for the 3d, 1w and 1M candles)."""
    queries = runtime.queries
    seed: dict[str, tuple[int, list[Kline], list[Kline]]] = {}
    for symbol in markets:
        last = queries.last_trade(symbol)
        start = now - WINDOW_MS
        minutes: list[Kline] = []
        while True:  # 1440 buckets, read 1000 at a time
            page = queries.klines(symbol, "1m", start_time=start, limit=1000)
            minutes.extend(page)
            if len(page) < 1000:
                break
            start = page[-1].open_time + 1
        days = queries.klines(symbol, "1d", start_time=now - 40 * DAY_MS, limit=1000)
        seed[symbol] = (last.trade_id if last is not None else -1, minutes, days)
    return seed


# ---------------------------------------------------------------------- event shapes


def _levels(levels: list[tuple[int, int]], s: _Scales) -> list[list[str]]:
    return [[fmt(p, s.quote), fmt(q, s.base)] for p, q in levels]


def _diff(
    old: list[tuple[int, int]], new: list[tuple[int, int]], s: _Scales, *, reverse: bool
) -> list[list[str]]:
    """The levels that changed, best first; quantity 0 removes the level."""
    before = dict(old)
    after = dict(new)
    changed = [(p, q) for p, q in after.items() if before.get(p) != q]
    changed.extend((p, 0) for p in before if p not in after)
    changed.sort(reverse=reverse)
    return _levels(changed, s)


def book_ticker(book: DepthSnapshot, s: _Scales) -> dict[str, Any]:
    bid = book.bids[0] if book.bids else (0, 0)
    ask = book.asks[0] if book.asks else (0, 0)
    return {
        "u": book.sequence,
        "s": s.name,
        "b": fmt(bid[0], s.quote),
        "B": fmt(bid[1], s.base),
        "a": fmt(ask[0], s.quote),
        "A": fmt(ask[1], s.base),
    }


def trade_event(trade: Trade, s: _Scales, now: int) -> dict[str, Any]:
    return {
        "e": "trade",
        "E": now,
        "s": s.name,
        "t": trade.trade_id,
        "p": fmt(trade.price, s.quote),
        "q": fmt(trade.quantity, s.base),
        "T": trade.time,
        "m": trade.taker_side is Side.SELL,  # the buyer is the maker when the taker sells
        "M": True,
    }


def agg_trade_event(trade: Trade, s: _Scales, now: int) -> dict[str, Any]:
    """One aggregate per trade (as ``GET /api/v3/aggTrades``): ``a`` is the trade id."""
    return {
        "e": "aggTrade",
        "E": now,
        "s": s.name,
        "a": trade.trade_id,
        "p": fmt(trade.price, s.quote),
        "q": fmt(trade.quantity, s.base),
        "f": trade.trade_id,
        "l": trade.trade_id,
        "T": trade.time,
        "m": trade.taker_side is Side.SELL,
        "M": True,
    }


def kline_event(candle: _Candle, interval: str, s: _Scales, now: int) -> dict[str, Any]:
    closes = candle.close_time
    return {
        "e": "kline",
        "E": now,
        "s": s.name,
        "k": {
            "t": candle.open_time,
            "T": closes,
            "s": s.name,
            "i": interval,
            "f": candle.first_id,
            "L": candle.last_id,
            "o": fmt(candle.open, s.quote),
            "c": fmt(candle.close, s.quote),
            "h": fmt(candle.high, s.quote),
            "l": fmt(candle.low, s.quote),
            "v": fmt(candle.volume, s.base),
            "n": candle.count,
            "x": now > closes,
            "q": fmt(candle.quote_volume, s.quote),
            "V": fmt(candle.buy_volume, s.base),
            "Q": fmt(candle.buy_quote, s.quote),
            "B": "0",
        },
    }


def _window_prices(window: _Window) -> tuple[int, int, int, int]:
    buckets = window.buckets
    high = max(b.high for b in buckets)
    low = min(b.low for b in buckets)
    return buckets[0].open, high, low, buckets[-1].close


def mini_ticker_event(window: _Window, s: _Scales, now: int) -> dict[str, Any]:
    opened, high, low, close = _window_prices(window)
    return {
        "e": "24hrMiniTicker",
        "E": now,
        "s": s.name,
        "c": fmt(close, s.quote),
        "o": fmt(opened, s.quote),
        "h": fmt(high, s.quote),
        "l": fmt(low, s.quote),
        "v": fmt(window.volume, s.base),
        "q": fmt(window.quote_volume, s.quote),
    }


def ticker_event(window: _Window, book: DepthSnapshot | None, s: _Scales, now: int) -> dict[str, Any]:
    opened, high, low, close = _window_prices(window)
    change = close - opened
    percent = (Decimal(change) * 100 / Decimal(opened)).quantize(Decimal("0.001")) if opened else Decimal(0)
    vwap = window.quote_volume * 10**s.base // window.volume if window.volume else close
    bid = book.bids[0] if book is not None and book.bids else (0, 0)
    ask = book.asks[0] if book is not None and book.asks else (0, 0)
    first_ids = [b.first_id for b in window.buckets if b.first_id >= 0]
    last_ids = [b.last_id for b in window.buckets if b.last_id >= 0]
    return {
        "e": "24hrTicker",
        "E": now,
        "s": s.name,
        "p": fmt(change, s.quote),
        "P": f"{percent:f}",
        "w": fmt(vwap, s.quote),
        "x": fmt(opened, s.quote),
        "c": fmt(close, s.quote),
        "Q": fmt(window.last_quantity, s.base),
        "b": fmt(bid[0], s.quote),
        "B": fmt(bid[1], s.base),
        "a": fmt(ask[0], s.quote),
        "A": fmt(ask[1], s.base),
        "o": fmt(opened, s.quote),
        "h": fmt(high, s.quote),
        "l": fmt(low, s.quote),
        "v": fmt(window.volume, s.base),
        "q": fmt(window.quote_volume, s.quote),
        "O": now - WINDOW_MS,
        "C": now,
        "F": first_ids[0] if first_ids else -1,
        "L": last_ids[-1] if last_ids else -1,
        "n": window.count,
    }


def execution_reports(
    order: OrderView,
    fills: Iterable[tuple[Trade, bool]],
    first_seq: int,
    s: _Scales,
    assets: dict[str, int],
    now: int,
) -> list[dict[str, Any]]:
    """The ``executionReport`` events of one order in one batch, in Binance's order."""
    fills = list(fills)
    quantity = order.quantity if order.quantity is not None else order.filled_quantity
    base: dict[str, Any] = {
        "e": "executionReport",
        "E": now,
        "s": s.name,
        "c": order.client_order_id or "",
        "S": "BUY" if order.side is Side.BUY else "SELL",
        "o": orders_view.order_type(order),
        "f": orders_view.time_in_force(order),
        "q": fmt(quantity, s.base),
        "p": fmt(order.price or 0, s.quote),
        "P": fmt(order.stop_price or 0, s.quote),
        "F": fmt(0, s.base),
        "g": -1,
        "C": "",
        "r": "NONE",
        "i": order.order_id,
        "I": order.order_id,
        "O": order.created_at,
        "Q": fmt(order.quote_quantity or 0, s.quote),
        "W": order.created_at,
        "V": _STP.get(order.self_trade_prevention, "NONE"),
    }

    def report(
        execution: str,
        status: str,
        filled: int,
        quote_filled: int,
        at: int,
        working: bool,
        trade: Trade | None = None,
        maker: bool = False,
    ) -> dict[str, Any]:
        event = dict(base)
        event.update(
            x=execution,
            X=status,
            l=fmt(trade.quantity if trade else 0, s.base),
            z=fmt(filled, s.base),
            L=fmt(trade.price if trade else 0, s.quote),
            n=fmt(0, 8),
            N=None,
            T=at,
            t=trade.trade_id if trade else -1,
            w=working,
            m=maker,
            M=trade is not None,
            Z=fmt(quote_filled, s.quote),
            Y=fmt(trade.quote_quantity if trade else 0, s.quote),
        )
        if trade is not None:
            fee, fee_asset = (
                (trade.maker_fee, trade.maker_fee_asset)
                if maker
                else (trade.taker_fee, trade.taker_fee_asset)
            )
            event["n"] = fmt(fee, assets.get(fee_asset, 8))
            event["N"] = fee_asset
        return event

    events: list[dict[str, Any]] = []
    is_new = order.created_seq >= first_seq
    # What was filled before this batch's trades: counted back from the final state.
    filled = order.filled_quantity - sum(t.quantity for t, _ in fills)
    quote_filled = order.quote_filled - sum(t.quote_quantity for t, _ in fills)
    if is_new and order.status is not OrderStatus.REJECTED:
        events.append(report("NEW", "NEW", filled, quote_filled, order.created_at, True))
    for index, (trade, maker) in enumerate(fills):
        filled += trade.quantity
        quote_filled += trade.quote_quantity
        last = index == len(fills) - 1
        status = (
            "FILLED"
            if (last and order.status is OrderStatus.FILLED) or (quantity and filled >= quantity)
            else "PARTIALLY_FILLED"
        )
        working = status != "FILLED" and not (last and order.status not in _OPEN)
        events.append(report("TRADE", status, filled, quote_filled, trade.time, working, trade, maker))
    final = _FINAL_EVENTS.get(order.status)
    if final is not None:
        events.append(
            report(
                final,
                _STATUS[order.status],
                order.filled_quantity,
                order.quote_filled,
                order.updated_at,
                False,
            )
        )
    elif not events and order.status in _OPEN:
        # Touched without a fill or a final state (a stop order triggered, say): its state now.
        events.append(
            report(
                "NEW",
                _STATUS[order.status],
                order.filled_quantity,
                order.quote_filled,
                order.updated_at,
                True,
            )
        )
    return events
