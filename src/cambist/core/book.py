"""Price-time priority order book for one market.

Each side is a sorted map from price to a ``Level``; a level keeps its resting orders in
arrival order (an ``OrderedDict``: O(1) append, O(1) removal by id, O(1) front) and the total
resting quantity so depth needs no per-order walk.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from itertools import islice

from sortedcontainers import SortedDict

from cambist.core.orders import Order


class Level:
    __slots__ = ("orders", "price", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.total = 0
        self.orders: OrderedDict[int, Order] = OrderedDict()

    def first(self) -> Order:
        return next(iter(self.orders.values()))


class BookSide:
    """One side of a book. Bids are keyed by negated price so both sides iterate best first."""

    __slots__ = ("_sign", "levels")

    def __init__(self, *, is_bid: bool) -> None:
        self._sign = -1 if is_bid else 1
        self.levels: SortedDict[int, Level] = SortedDict()

    def best(self) -> Level | None:
        if not self.levels:
            return None
        level: Level = self.levels.peekitem(0)[1]
        return level

    def best_price(self) -> int | None:
        level = self.best()
        return None if level is None else level.price

    def add(self, order: Order, quantity: int) -> None:
        assert order.price is not None
        key = self._sign * order.price
        level = self.levels.get(key)
        if level is None:
            level = Level(order.price)
            self.levels[key] = level
        level.orders[order.order_id] = order
        level.total += quantity

    def remove(self, order: Order, quantity: int) -> None:
        """Take a resting order out of its level (filled, canceled or expired)."""
        assert order.price is not None
        key = self._sign * order.price
        level = self.levels[key]
        del level.orders[order.order_id]
        level.total -= quantity
        if not level.orders:
            del self.levels[key]

    def reduce(self, order: Order, quantity: int) -> None:
        """A partial fill: the order stays in place, its level shrinks."""
        assert order.price is not None
        self.levels[self._sign * order.price].total -= quantity

    def iter_levels(self) -> Iterator[Level]:
        return iter(self.levels.values())

    def depth(self, limit: int) -> list[tuple[int, int]]:
        return [(level.price, level.total) for level in islice(self.levels.values(), limit)]

    def __len__(self) -> int:
        return len(self.levels)


class OrderBook:
    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = BookSide(is_bid=True)
        self.asks = BookSide(is_bid=False)
