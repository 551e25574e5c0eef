"""Turn the engine's committed batches into WebSocket channel messages.

``StreamHub`` is an engine subscriber (registered in ``Runtime.start`` after the market-data
hub, so ``runtime.hub`` already shows the batch). It runs on the event loop, inside the
engine's publish step, so it never waits: each message is encoded once per channel per batch
(msgspec JSON) and the same string is handed to every subscriber with ``deliver``, which only
does ``put_nowait`` on the subscriber's bounded queue (see ``connection.py``).

Channels:

- ``trades:<SYMBOL>`` -- one update per trade.
- ``orderbook:<SYMBOL>`` -- a snapshot on subscribe, then updates that diff consecutive depth
  snapshots (the engine keeps the best 1000 levels per side: a level pushed out of those is
  sent as removed). Each update's ``prevSequence`` is the ``sequence`` of the message before.
- ``ticker:<SYMBOL>`` -- after trades on the symbol: last price, best bid and ask. It carries
  no 24 h statistics (that would need the database per message): those stay on
  ``GET /api/v1/ticker/{symbol}``.
- ``klines:<SYMBOL>:<interval>`` -- the current candle, updated from each batch's trades. It
  lives in memory only: the first candle after a restart covers the trades since the restart.
- ``orders``, ``fills``, ``balances`` -- private, to the account concerned only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from cambist.api.money import fmt
from cambist.api.presenters import order_body
from cambist.core.events import Trade
from cambist.core.types import Side
from cambist.engine.engine import CommittedBatch, DepthSnapshot
from cambist.marketdata.hub import MarketDataHub
from cambist.store.models_trading import KLINE_INTERVALS_MS

PUBLIC_KINDS = ("trades", "orderbook", "ticker")
PRIVATE_CHANNELS = ("orders", "fills", "balances")

_encode = msgspec.json.Encoder().encode


class Subscriber(Protocol):
    def deliver(self, frame: str) -> None: ...


def encode(message: Any) -> str:
    return _encode(message).decode()


def message(channel: str, kind: str, data: Any) -> str:
    return encode({"channel": channel, "type": kind, "data": data})


def _private_key(channel: str, account_id: int) -> str:
    # "@" never appears in a channel a client may name: these keys cannot be asked for.
    return f"{channel}@{account_id}"


class _Candle:
    __slots__ = ("close", "count", "high", "low", "open", "open_time", "quote_volume", "volume")

    def __init__(self, open_time: int, trade: Trade) -> None:
        self.open_time = open_time
        self.open = self.high = self.low = self.close = trade.price
        self.volume = self.quote_volume = self.count = 0

    def add(self, trade: Trade) -> None:
        self.high = max(self.high, trade.price)
        self.low = min(self.low, trade.price)
        self.close = trade.price
        self.volume += trade.quantity
        self.quote_volume += trade.quote_quantity
        self.count += 1


class StreamHub:
    def __init__(self, hub: MarketDataHub) -> None:
        self.hub = hub
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._depth: dict[str, DepthSnapshot] = {}  # the last book each symbol's messages described
        self._candles: dict[tuple[str, str], _Candle] = {}

    # ------------------------------------------------------------------ channel names

    def validate(self, channel: str) -> tuple[str, str] | None:
        """``None`` when ``channel`` is fine, else an error ``(code, message)``."""
        if channel in PRIVATE_CHANNELS:
            return None
        kind, _, rest = channel.partition(":")
        if kind in PUBLIC_KINDS:
            symbol = rest
        elif kind == "klines":
            symbol, _, interval = rest.rpartition(":")
            if interval not in KLINE_INTERVALS_MS:
                return "UNKNOWN_CHANNEL", f"unknown kline interval in {channel!r}"
        else:
            return "UNKNOWN_CHANNEL", f"unknown channel {channel!r}"
        if symbol not in self.hub.markets:
            return "UNKNOWN_SYMBOL", f"unknown symbol {symbol!r}"
        return None

    # ------------------------------------------------------------------ subscriptions

    def subscribe(self, subscriber: Subscriber, channel: str, account_id: int | None) -> None:
        """Register and, for an order book, deliver its snapshot in the same step: no batch
        can come between the snapshot and the first update."""
        key = (
            _private_key(channel, account_id)
            if channel in PRIVATE_CHANNELS and account_id is not None
            else channel
        )
        self._subscribers.setdefault(key, set()).add(subscriber)
        if channel.startswith("orderbook:"):
            symbol = channel.partition(":")[2]
            snapshot = self._book(symbol)
            subscriber.deliver(message(channel, "snapshot", self._book_body(symbol, snapshot)))

    def unsubscribe(self, subscriber: Subscriber, channel: str, account_id: int | None) -> None:
        key = (
            _private_key(channel, account_id)
            if channel in PRIVATE_CHANNELS and account_id is not None
            else channel
        )
        subscribers = self._subscribers.get(key)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[key]

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    # ------------------------------------------------------------------ engine side

    def load(self) -> None:
        """Start from what the hub shows (called once the hub is loaded)."""
        self._depth = {symbol: self.hub.depth(symbol) for symbol in self.hub.markets}

    def on_recovered(self, _core: Any) -> None:
        """After the engine rebuilt its core the hub reloaded: tell the difference as updates,
        so existing order-book subscribers keep an unbroken chain."""
        self._publish_books(self.hub.depth(symbol) for symbol in self.hub.markets)

    def on_commit(self, batch: CommittedBatch) -> None:
        changes = batch.changes
        self._publish_books(batch.depth.values())
        if changes.trades:
            self._publish_trades(changes.trades)
        if changes.orders:
            self._publish_orders(changes.orders)
        if changes.balances:
            assets = self.hub.assets
            for account_id, rows in _group((b.account_id, b) for b in changes.balances).items():
                subscribers = self._subscribers.get(_private_key("balances", account_id))
                for balance in rows:
                    scale = assets[balance.asset]
                    body = {
                        "asset": balance.asset,
                        "available": fmt(balance.available, scale),
                        "locked": fmt(balance.locked, scale),
                    }
                    if subscribers:
                        self._send(subscribers, message("balances", "update", body))

    # ------------------------------------------------------------------ order books

    def _book(self, symbol: str) -> DepthSnapshot:
        snapshot = self._depth.get(symbol)
        if snapshot is None:
            snapshot = self._depth[symbol] = self.hub.depth(symbol)
        return snapshot

    def _scales(self, symbol: str) -> tuple[int, int]:
        market = self.hub.markets[symbol]
        return self.hub.assets[market.base_asset], self.hub.assets[market.quote_asset]

    def _book_body(self, symbol: str, snapshot: DepthSnapshot) -> dict[str, Any]:
        base, quote = self._scales(symbol)
        return {
            "symbol": symbol,
            "sequence": snapshot.sequence,
            "bids": [(fmt(p, quote), fmt(q, base)) for p, q in snapshot.bids],
            "asks": [(fmt(p, quote), fmt(q, base)) for p, q in snapshot.asks],
        }

    def _publish_books(self, snapshots: Iterable[DepthSnapshot]) -> None:
        for new in snapshots:
            symbol = new.symbol
            previous = self._depth.get(symbol)
            self._depth[symbol] = new
            if previous is None or new == previous:
                continue
            channel = f"orderbook:{symbol}"
            subscribers = self._subscribers.get(channel)
            if not subscribers or symbol not in self.hub.markets:
                continue
            base, quote = self._scales(symbol)
            body = {
                "symbol": symbol,
                "sequence": new.sequence,
                "prevSequence": previous.sequence,
                "bids": _diff(previous.bids, new.bids, base, quote, reverse=True),
                "asks": _diff(previous.asks, new.asks, base, quote, reverse=False),
            }
            self._send(subscribers, message(channel, "update", body))

    # ------------------------------------------------------------------ trades

    def _publish_trades(self, trades: list[Trade]) -> None:
        by_symbol = _group((t.symbol, t) for t in trades)
        for symbol, rows in by_symbol.items():
            if symbol not in self.hub.markets:
                continue
            base, quote = self._scales(symbol)
            channel = f"trades:{symbol}"
            subscribers = self._subscribers.get(channel)
            if subscribers:
                for trade in rows:
                    body = {
                        "symbol": symbol,
                        "tradeId": trade.trade_id,
                        "price": fmt(trade.price, quote),
                        "quantity": fmt(trade.quantity, base),
                        "takerSide": str(trade.taker_side),
                        "time": trade.time,
                    }
                    self._send(subscribers, message(channel, "update", body))
            channel = f"ticker:{symbol}"
            subscribers = self._subscribers.get(channel)
            if subscribers:
                last = rows[-1]
                book = self.hub.depth(symbol)
                body = {
                    "symbol": symbol,
                    "lastPrice": fmt(last.price, quote),
                    "bestBid": fmt(book.bids[0][0], quote) if book.bids else None,
                    "bestAsk": fmt(book.asks[0][0], quote) if book.asks else None,
                    "time": last.time,
                }
                self._send(subscribers, message(channel, "update", body))
            self._publish_klines(symbol, rows, base, quote)
            self._publish_fills(symbol, rows, base, quote)

    def _publish_klines(self, symbol: str, trades: list[Trade], base: int, quote: int) -> None:
        for interval, length in KLINE_INTERVALS_MS.items():
            key = (symbol, interval)
            touched: list[_Candle] = []
            for trade in trades:
                open_time = trade.time - trade.time % length
                candle = self._candles.get(key)
                if candle is None or candle.open_time < open_time:
                    candle = self._candles[key] = _Candle(open_time, trade)
                elif candle.open_time > open_time:
                    continue  # a trade older than the current candle: never from the engine
                candle.add(trade)
                if not touched or touched[-1] is not candle:
                    touched.append(candle)
            channel = f"klines:{symbol}:{interval}"
            subscribers = self._subscribers.get(channel)
            if not subscribers:
                continue
            for candle in touched:
                body = {
                    "symbol": symbol,
                    "interval": interval,
                    "openTime": candle.open_time,
                    "closeTime": candle.open_time + length - 1,
                    "open": fmt(candle.open, quote),
                    "high": fmt(candle.high, quote),
                    "low": fmt(candle.low, quote),
                    "close": fmt(candle.close, quote),
                    "volume": fmt(candle.volume, base),
                    "quoteVolume": fmt(candle.quote_volume, quote),
                    "count": candle.count,
                }
                self._send(subscribers, message(channel, "update", body))

    # ------------------------------------------------------------------ private

    def _publish_fills(self, symbol: str, trades: list[Trade], base: int, quote: int) -> None:
        assets = self.hub.assets
        for trade in trades:
            buyer_is_taker = trade.taker_side is Side.BUY
            sides = (
                (
                    trade.taker_account_id,
                    trade.taker_order_id,
                    "taker",
                    trade.taker_fee,
                    trade.taker_fee_asset,
                    "buy" if buyer_is_taker else "sell",
                ),
                (
                    trade.maker_account_id,
                    trade.maker_order_id,
                    "maker",
                    trade.maker_fee,
                    trade.maker_fee_asset,
                    "sell" if buyer_is_taker else "buy",
                ),
            )
            for account_id, order_id, liquidity, fee, fee_asset, side in sides:
                subscribers = self._subscribers.get(_private_key("fills", account_id))
                if not subscribers:
                    continue
                body = {
                    "symbol": symbol,
                    "tradeId": trade.trade_id,
                    "orderId": order_id,
                    "side": side,
                    "price": fmt(trade.price, quote),
                    "quantity": fmt(trade.quantity, base),
                    "fee": fmt(fee, assets[fee_asset]),
                    "feeAsset": fee_asset,
                    "liquidity": liquidity,
                    "time": trade.time,
                }
                self._send(subscribers, message("fills", "update", body))

    def _publish_orders(self, orders: Iterable[Any]) -> None:
        assets = self.hub.assets
        for order in orders:
            subscribers = self._subscribers.get(_private_key("orders", order.account_id))
            market = self.hub.markets.get(order.symbol)
            if not subscribers or market is None:
                continue
            self._send(subscribers, message("orders", "update", order_body(order, market, assets, [])))

    @staticmethod
    def _send(subscribers: set[Subscriber], frame: str) -> None:
        for subscriber in tuple(subscribers):  # deliver may unsubscribe a slow consumer
            subscriber.deliver(frame)


def _group(pairs: Iterable[tuple[Any, Any]]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def _diff(
    old: list[tuple[int, int]], new: list[tuple[int, int]], base: int, quote: int, *, reverse: bool
) -> list[tuple[str, str]]:
    """The levels that changed from ``old`` to ``new``, best first; quantity "0" removes."""
    before = dict(old)
    after = dict(new)
    changed = [(p, q) for p, q in after.items() if before.get(p) != q]
    changed.extend((p, 0) for p in before if p not in after)
    changed.sort(reverse=reverse)
    return [(fmt(p, quote), fmt(q, base)) for p, q in changed]
