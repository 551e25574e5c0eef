"""The full invariant scan over the whole core state.

The core checks what each command touched on every command; this walks everything and is
run by the tests after every step, by the engine at start and periodically, and by
``cambist verify``. A violation raises ``InvariantViolation``.
"""

from __future__ import annotations

from cambist.core.exchange import ExchangeCore, InvariantViolation
from cambist.core.numbers import POW10
from cambist.core.orders import Order
from cambist.core.types import (
    EXTERNAL_ACCOUNT,
    PRICED_TYPES,
    RESTING_TIFS,
    OrderStatus,
    OrderType,
    Side,
    triggers_on_rise,
)


def check_invariants(core: ExchangeCore) -> None:
    _check_balances(core)
    _check_holds(core)
    _check_books(core)
    if core.state_hash() != core.compute_state_hash():
        raise InvariantViolation("incremental state hash differs from the full computation")


def _check_balances(core: ExchangeCore) -> None:
    """No negative balance; per asset everything sums to zero (the external account is
    the negative of all credits, so users + fees = what was credited)."""
    totals: dict[str, int] = {}
    for (account, asset), (available, locked) in core.balances.items():
        if account != EXTERNAL_ACCOUNT and (available < 0 or locked < 0):
            raise InvariantViolation(f"negative balance for {account} {asset}: {available}/{locked}")
        if account == EXTERNAL_ACCOUNT and (available > 0 or locked != 0):
            raise InvariantViolation(f"external account holds {asset}: {available}/{locked}")
        if asset not in core.assets:
            raise InvariantViolation(f"balance in unknown asset {asset}")
        totals[asset] = totals.get(asset, 0) + available + locked
    for asset, total in totals.items():
        if total != 0:
            raise InvariantViolation(f"{asset} is not conserved: sum of all accounts is {total}")


def _held_by_its_list(core: ExchangeCore, order: Order) -> bool:
    """The waiting stop of an OCO list holds nothing: its limit order holds for the list."""
    if order.linked_order_id is None or order.status is not OrderStatus.UNTRIGGERED:
        return False
    sibling = core.orders.get(order.linked_order_id)
    if sibling is None or sibling.linked_order_id != order.order_id or order.hold_remaining:
        raise InvariantViolation(f"OCO order {order.order_id} waits without its list's funds")
    return True


def _check_holds(core: ExchangeCore) -> None:
    """Locked funds equal what open orders reserve."""
    reserved: dict[tuple[int, str], int] = {}
    for order in core.orders.values():
        key = (order.account_id, order.hold_asset)
        reserved[key] = reserved.get(key, 0) + order.hold_remaining
        if _held_by_its_list(core, order):
            continue
        if order.side is Side.SELL and order.hold_remaining != order.remaining:
            raise InvariantViolation(
                f"sell order {order.order_id} holds {order.hold_remaining} for {order.remaining}"
            )
        if order.side is Side.BUY and order.price is not None:
            base_unit = POW10[core.assets[core.markets[order.symbol].view.base_asset]]
            if order.hold_remaining * base_unit < order.remaining * order.price:
                raise InvariantViolation(f"buy order {order.order_id} holds too little for what remains")
    for key, (_available, locked) in core.balances.items():
        if key[0] != EXTERNAL_ACCOUNT and locked != reserved.get(key, 0):
            raise InvariantViolation(f"locked {key} is {locked}, open orders reserve {reserved.get(key, 0)}")
    for key, amount in reserved.items():
        if amount and key not in core.balances:
            raise InvariantViolation(f"orders reserve {amount} of {key} that is not locked")


def _check_books(core: ExchangeCore) -> None:
    """Not crossed; levels hold exactly the open orders, in priority order, on the right side."""
    on_books: set[int] = set()
    for symbol, market in core.markets.items():
        for side_name, side in (("bid", market.book.bids), ("ask", market.book.asks)):
            for level in side.iter_levels():
                if not level.orders:
                    raise InvariantViolation(f"{symbol} empty {side_name} level {level.price}")
                total = 0
                last_priority = -1
                for order in level.orders.values():
                    if order.symbol != symbol or order.price != level.price:
                        raise InvariantViolation(f"order {order.order_id} on the wrong level")
                    if (order.side is Side.BUY) != (side_name == "bid"):
                        raise InvariantViolation(f"order {order.order_id} on the wrong side")
                    if order.order_type not in PRICED_TYPES or order.time_in_force not in RESTING_TIFS:
                        raise InvariantViolation(f"order {order.order_id} may not rest")
                    view = market.view
                    if order.price % view.tick_size or (order.quantity or 0) % view.lot_size:
                        raise InvariantViolation(f"order {order.order_id} is off the tick or lot grid")
                    if order.remaining <= 0 or not order.is_open:
                        raise InvariantViolation(f"order {order.order_id} rests with nothing to fill")
                    if order.priority < last_priority:
                        raise InvariantViolation(f"{symbol} level {level.price} out of time priority")
                    last_priority = order.priority
                    if order.iceberg_quantity is not None and not (
                        order.shown_remaining is not None
                        and 0 < order.shown_remaining <= min(order.iceberg_quantity, order.remaining)
                    ):
                        raise InvariantViolation(f"iceberg {order.order_id} shows a wrong slice")
                    total += order.shown
                    on_books.add(order.order_id)
                if total != level.total:
                    raise InvariantViolation(f"{symbol} level {level.price} total {level.total} != {total}")
        bid, ask = market.book.bids.best_price(), market.book.asks.best_price()
        if bid is not None and ask is not None and bid >= ask:
            raise InvariantViolation(f"{symbol} book crossed: {bid} >= {ask}")
    waiting = _check_untriggered(core)
    if on_books | waiting != set(core.orders) or on_books & waiting:
        raise InvariantViolation("open orders and book contents differ")
    for order in core.orders.values():
        if order.quantity is not None and order.filled_quantity + order.remaining != order.quantity:
            raise InvariantViolation(f"order {order.order_id}: filled + remaining != quantity")


def _check_untriggered(core: ExchangeCore) -> set[int]:
    """Untriggered orders wait in exactly one trigger list of their market, the one their
    type and side call for, under their stop price; nothing else waits there."""
    waiting: set[int] = set()
    for symbol, market in core.markets.items():
        for rises, entries in ((True, market.on_rise), (False, market.on_fall)):
            for stop, order_id in entries:
                order = core.orders.get(order_id)
                if order is None or order.status is not OrderStatus.UNTRIGGERED or order.symbol != symbol:
                    raise InvariantViolation(f"{symbol} waits for order {order_id}, which is not untriggered")
                if order.stop_price != stop or triggers_on_rise(order.order_type, order.side) != rises:
                    raise InvariantViolation(f"order {order_id} waits under the wrong stop or direction")
                if order_id in waiting:
                    raise InvariantViolation(f"order {order_id} waits twice")
                waiting.add(order_id)
        for order_id, order in market.trailing.items():
            if order.order_id != order_id or order.status is not OrderStatus.UNTRIGGERED:
                raise InvariantViolation(f"{symbol} trails order {order_id}, which is not untriggered")
            if order.order_type is not OrderType.TRAILING_STOP or core.orders.get(order_id) is not order:
                raise InvariantViolation(
                    f"{symbol} trails order {order_id}, which is not an open trailing stop"
                )
            if order_id in waiting:
                raise InvariantViolation(f"order {order_id} waits twice")
            waiting.add(order_id)
    for order in core.orders.values():
        if order.status is OrderStatus.UNTRIGGERED and order.order_id not in waiting:
            raise InvariantViolation(f"untriggered order {order.order_id} waits nowhere")
    return waiting
