"""The mutable order the core keeps while it is open, and its one status transition table."""

from __future__ import annotations

from cambist.core.events import OrderView
from cambist.core.types import (
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

# Which status may follow which. Anything else is a bug and stops the engine.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.UNTRIGGERED: frozenset(
        {
            OrderStatus.NEW,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
            OrderStatus.REJECTED,
        }
    ),
    OrderStatus.NEW: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED}
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED}
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


class InvalidTransition(RuntimeError):
    pass


class Order:
    __slots__ = (
        "account_id",
        "activation_price",
        "client_order_id",
        "created_at",
        "created_seq",
        "expire_time",
        "fee",
        "fee_asset",
        "filled_quantity",
        "hold_asset",
        "hold_remaining",
        "iceberg_quantity",
        "linked_order_id",
        "order_id",
        "order_type",
        "post_only",
        "price",
        "priority",
        "quantity",
        "queue_rank",
        "quote_filled",
        "quote_quantity",
        "reduce_only",
        "self_trade_prevention",
        "shown_remaining",
        "side",
        "status",
        "stop_price",
        "symbol",
        "time_in_force",
        "trail_extreme",
        "trailing_offset",
        "trailing_ppm",
        "updated_at",
        "updated_seq",
    )

    def __init__(
        self,
        *,
        order_id: int,
        account_id: int,
        symbol: str,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        post_only: bool,
        self_trade_prevention: SelfTradePrevention,
        client_order_id: str | None,
        price: int | None,
        quantity: int | None,
        quote_quantity: int | None,
        fee_asset: str,
        hold_asset: str,
        seq: int,
        time: int,
        status: OrderStatus = OrderStatus.NEW,
        filled_quantity: int = 0,
        quote_filled: int = 0,
        fee: int = 0,
        hold_remaining: int = 0,
        priority: int | None = None,
        created_at: int | None = None,
        created_seq: int | None = None,
        stop_price: int | None = None,
        queue_rank: int = 0,
        expire_time: int | None = None,
        trailing_offset: int | None = None,
        trailing_ppm: int | None = None,
        activation_price: int | None = None,
        trail_extreme: int | None = None,
        iceberg_quantity: int | None = None,
        shown_remaining: int | None = None,
        reduce_only: bool = False,
        linked_order_id: int | None = None,
    ) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.time_in_force = time_in_force
        self.post_only = post_only
        self.self_trade_prevention = self_trade_prevention
        self.client_order_id = client_order_id
        self.price = price
        self.quantity = quantity
        self.quote_quantity = quote_quantity
        self.status = status
        self.filled_quantity = filled_quantity
        self.quote_filled = quote_filled
        self.fee = fee
        self.fee_asset = fee_asset
        self.hold_asset = hold_asset
        self.hold_remaining = hold_remaining
        self.priority = seq if priority is None else priority
        self.created_at = time if created_at is None else created_at
        self.updated_at = time
        self.created_seq = seq if created_seq is None else created_seq
        self.updated_seq = seq
        self.stop_price = stop_price
        self.queue_rank = queue_rank
        self.expire_time = expire_time
        self.trailing_offset = trailing_offset
        self.trailing_ppm = trailing_ppm
        self.activation_price = activation_price
        self.trail_extreme = trail_extreme
        self.iceberg_quantity = iceberg_quantity
        self.shown_remaining = shown_remaining
        self.reduce_only = reduce_only
        self.linked_order_id = linked_order_id

    @property
    def remaining(self) -> int:
        """Base quantity still to fill; 0 for an order sized in quote only."""
        return 0 if self.quantity is None else self.quantity - self.filled_quantity

    @property
    def shown(self) -> int:
        """What the order shows on the book: all it has left, or an iceberg's current slice."""
        return self.remaining if self.shown_remaining is None else self.shown_remaining

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.UNTRIGGERED)

    def transition(self, status: OrderStatus, seq: int, time: int) -> None:
        if status is not self.status and status not in TRANSITIONS[self.status]:
            raise InvalidTransition(f"order {self.order_id}: {self.status} -> {status}")
        self.status = status
        self.touch(seq, time)

    def touch(self, seq: int, time: int) -> None:
        self.updated_seq = seq
        self.updated_at = time

    def view(self) -> OrderView:
        return OrderView(
            order_id=self.order_id,
            account_id=self.account_id,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            time_in_force=self.time_in_force,
            post_only=self.post_only,
            self_trade_prevention=self.self_trade_prevention,
            client_order_id=self.client_order_id,
            price=self.price,
            quantity=self.quantity,
            quote_quantity=self.quote_quantity,
            status=self.status,
            filled_quantity=self.filled_quantity,
            quote_filled=self.quote_filled,
            fee=self.fee,
            fee_asset=self.fee_asset,
            hold_asset=self.hold_asset,
            hold_remaining=self.hold_remaining,
            priority=self.priority,
            created_at=self.created_at,
            updated_at=self.updated_at,
            created_seq=self.created_seq,
            updated_seq=self.updated_seq,
            stop_price=self.stop_price,
            queue_rank=self.queue_rank,
            expire_time=self.expire_time,
            trailing_offset=self.trailing_offset,
            trailing_ppm=self.trailing_ppm,
            activation_price=self.activation_price,
            trail_extreme=self.trail_extreme,
            iceberg_quantity=self.iceberg_quantity,
            shown_remaining=self.shown_remaining,
            reduce_only=self.reduce_only,
            linked_order_id=self.linked_order_id,
        )

    @classmethod
    def from_view(cls, view: OrderView) -> Order:
        order = cls(
            order_id=view.order_id,
            account_id=view.account_id,
            symbol=view.symbol,
            side=view.side,
            order_type=view.order_type,
            time_in_force=view.time_in_force,
            post_only=view.post_only,
            self_trade_prevention=view.self_trade_prevention,
            client_order_id=view.client_order_id,
            price=view.price,
            quantity=view.quantity,
            quote_quantity=view.quote_quantity,
            fee_asset=view.fee_asset,
            hold_asset=view.hold_asset,
            seq=view.updated_seq,
            time=view.updated_at,
            status=view.status,
            filled_quantity=view.filled_quantity,
            quote_filled=view.quote_filled,
            fee=view.fee,
            hold_remaining=view.hold_remaining,
            priority=view.priority,
            created_at=view.created_at,
            created_seq=view.created_seq,
            stop_price=view.stop_price,
            queue_rank=view.queue_rank,
            expire_time=view.expire_time,
            trailing_offset=view.trailing_offset,
            trailing_ppm=view.trailing_ppm,
            activation_price=view.activation_price,
            trail_extreme=view.trail_extreme,
            iceberg_quantity=view.iceberg_quantity,
            shown_remaining=view.shown_remaining,
            reduce_only=view.reduce_only,
            linked_order_id=view.linked_order_id,
        )
        return order

    def hash_key(self) -> tuple[object, ...]:
        """Every field that defines the order's state, for the state hash.

        Fields added later join only when set, so every state written before them keeps its
        hash and still proves itself after an upgrade."""
        key: tuple[object, ...] = (
            "order",
            self.order_id,
            self.account_id,
            self.symbol,
            self.side.value,
            self.order_type.value,
            self.time_in_force.value,
            self.post_only,
            self.self_trade_prevention.value,
            self.client_order_id,
            self.price,
            self.quantity,
            self.quote_quantity,
            self.status.value,
            self.filled_quantity,
            self.quote_filled,
            self.fee,
            self.fee_asset,
            self.hold_asset,
            self.hold_remaining,
            self.priority,
            self.created_at,
            self.updated_at,
            self.created_seq,
            self.updated_seq,
        )
        if self.stop_price is not None:
            key += ("stop_price", self.stop_price)
        if self.queue_rank:
            key += ("queue_rank", self.queue_rank)
        if self.expire_time is not None:
            key += ("expire_time", self.expire_time)
        if self.reduce_only:
            key += ("reduce_only",)
        if self.linked_order_id is not None:
            key += ("linked", self.linked_order_id)
        if self.iceberg_quantity is not None:
            key += ("iceberg", self.iceberg_quantity, self.shown_remaining)
        if self.order_type is OrderType.TRAILING_STOP:
            key += (
                "trailing",
                self.trailing_offset,
                self.trailing_ppm,
                self.activation_price,
                self.trail_extreme,
            )
        return key
