"""A plain reference model of the spot core, written independently of ``cambist.core``.

Each market's book is one Python list of resting orders in arrival order; the best order is
found by sorting that list on price (Python's sort is stable, so arrival order breaks ties:
price-time priority with no sorted maps, levels or queues). Balances are a dict of
``[available, locked]``. Dry runs (the cost of a market buy, the base a quote-sized sell
needs, whether a FOK can fill) are answered by running the real matching on a deep copy of
the model and throwing the copy away, rather than by a separate walk.

The model covers every command the state machine sends: credits, limit GTC/IOC/FOK with
post-only, market orders by quantity and by quote quantity, all self-trade prevention modes,
stop and take-profit orders (market and limit; a list of waiting orders per market, checked
after every command that traded against the range of its trade prices, in rounds, in
placement order), trailing stops (each walks the round's trades one by one: it starts at
its activation price or the first trade, its stop follows the best price at a distance in
quote units or parts per million, rounded away from the price onto the tick, and it acts
like a stop-market when a trade reaches the stop; it is reported as touched whenever its
stop moved), time in force GTD (rests like GTC; ``ExpireOrders`` ends every open order
whose expiry is at or before the command's time, earliest first), iceberg limit orders (the
whole order takes; resting, only a slice shows, and a used-up slice is followed by the next at
the back of the list), OCO lists (a post-only limit order holding the list's funds and a stop
holding nothing; a fill of the limit expires the stop, the stop's trigger expires the limit and
takes the funds, canceling either cancels both), cancel, cancel-all and market updates (fees,
halt/resume, default self-trade prevention).
It predicts reject codes, order statuses, fills (price, quantity, maker, fees), the books in
queue order, every hold and every balance including the fee and external accounts.

Where the core is known to disagree with the intended behaviour, the model predicts the
intended behaviour unless the bug's name is in ``KNOWN_BUGS``; each entry has a strict
``xfail`` unit test, so fixing the core fails that test and the entry is then removed here.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from cambist.core.commands import (
    AddAsset,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    Credit,
    ExpireOrders,
    PlaceOco,
    PlaceOrder,
    UpsertMarket,
)
from cambist.core.types import (
    EXTERNAL_ACCOUNT,
    FEE_ACCOUNT,
    MarketStatus,
    OrderStatus,
    OrderType,
    RejectCode,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

# A quote-sized market order whose budget is used up exactly when the book runs out is
# reported EXPIRED (test_market_orders: ..._spending_its_budget_exactly_on_the_last_level...).
QUOTE_EXACT_EXPIRES = "quote-sized order spending its budget on the last level expires"
# A GTC limit taker stopped by expire_taker/expire_both is not expired (the state machine
# sends such orders as IOC instead; test_self_trade: ..._gtc_limit_...).
STP_GTC_TAKER_NOT_EXPIRED = "GTC limit taker stopped by self-trade prevention is not expired"
# Self-trade prevention ending an OCO list's limit order leaves its stop open, holding nothing
# (test_oco_bugs); the state machine does not send commands that would do it.
OCO_STP_ORPHAN_STOP = "self-trade prevention ending an OCO limit order leaves its stop open"
# An OCO stop due in a round of triggers whose limit order an earlier order of that round
# fills is expired by that fill, and then triggered anyway: the core raises ValueError
# (test_oco_bugs); the state machine does not send commands that would do it.
OCO_STOP_ENDED_WHILE_DUE = "an OCO stop expired while due in a round of triggers still triggers"
KNOWN_BUGS: frozenset[str] = frozenset()
# What the model notes when a command would meet a known bug (the state machine avoids it).
KNOWN_BUG_NOTES = {
    OCO_STP_ORPHAN_STOP: "OCO limit ended by self-trade prevention",
    OCO_STOP_ENDED_WHILE_DUE: "OCO stop expired while due to trigger",
}

MAX_UNITS = 2**62
MAX_OPEN_ORDERS = 1_000
MAX_FEE_PPM = 100_000
TRAILING_PPM = range(1_000, 200_001)  # 0.1 % to 20 %
COID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
SYSTEM = {FEE_ACCOUNT, EXTERNAL_ACCOUNT, -3}
STP = SelfTradePrevention


class Reject(Exception):
    def __init__(self, code: RejectCode) -> None:
        super().__init__(code.value)
        self.code = code


@dataclass
class MOrder:
    order_id: int
    account: int
    symbol: str
    side: Side
    kind: OrderType
    price: int | None
    quantity: int | None
    quote_quantity: int | None
    tif: TimeInForce
    stp: SelfTradePrevention
    client_order_id: str | None
    hold_asset: str
    hold: int = 0
    filled: int = 0
    quote_filled: int = 0
    fee: int = 0
    status: OrderStatus = OrderStatus.NEW
    stop: int | None = None  # conditional orders: the trigger price
    post_only: bool = False
    expire_time: int | None = None  # GTD
    # Trailing stops: the distance (one of the two), the activation price until it is reached,
    # and the best price since the trailing started (None until then).
    trail_offset: int | None = None
    trail_ppm: int | None = None
    activation: int | None = None
    extreme: int | None = None
    # Icebergs: the slice size, and what is left of the slice on the book (None until it rests).
    iceberg: int | None = None
    shown_left: int | None = None
    linked: int | None = None  # the other order of an OCO list

    @property
    def remaining(self) -> int:
        return 0 if self.quantity is None else self.quantity - self.filled

    @property
    def shown(self) -> int:
        """What the book shows: all that is left, or an iceberg's current slice."""
        return self.remaining if self.shown_left is None else self.shown_left


@dataclass(frozen=True)
class MTrade:
    price: int
    quantity: int
    quote: int
    maker_order_id: int
    taker_order_id: int
    maker_account: int
    taker_account: int
    maker_fee: int
    taker_fee: int


@dataclass
class MMarket:
    symbol: str
    base: str
    quote: str
    base_unit: int
    tick: int
    lot: int
    min_quantity: int
    min_notional: int
    maker_ppm: int
    taker_ppm: int
    halted: bool
    stp: SelfTradePrevention
    resting: list[MOrder] = field(default_factory=list)  # arrival order
    waiting: list[MOrder] = field(default_factory=list)  # untriggered conditional orders, arrival order
    last_price: int | None = None

    def asks(self) -> list[MOrder]:
        return sorted((o for o in self.resting if o.side is Side.SELL), key=lambda o: o.price or 0)

    def bids(self) -> list[MOrder]:
        return sorted((o for o in self.resting if o.side is Side.BUY), key=lambda o: -(o.price or 0))


@dataclass
class Result:
    reject: RejectCode | None = None
    order: MOrder | None = None
    trades: list[MTrade] = field(default_factory=list)
    touched: dict[int, OrderStatus] = field(default_factory=dict)  # other orders: final status


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


CONDITIONAL = (
    OrderType.STOP_MARKET,
    OrderType.STOP_LIMIT,
    OrderType.TAKE_PROFIT_MARKET,
    OrderType.TAKE_PROFIT_LIMIT,
)
PRICED = (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
RESTING = (TimeInForce.GTC, TimeInForce.GTD)


def rises(kind: OrderType, side: Side) -> bool:
    """A stop buys on a rise and sells on a fall; a take-profit the other way round."""
    is_stop = kind in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
    return is_stop == (side is Side.BUY)


class Model:
    def __init__(self) -> None:
        self.scales: dict[str, int] = {}
        self.markets: dict[str, MMarket] = {}
        self.balances: dict[tuple[int, str], list[int]] = {}
        self.open: dict[int, MOrder] = {}
        self.next_order_id = 1
        self.credited: dict[str, int] = {}
        self.time = 0  # of the command being applied (never runs backwards)
        self.notes: set[str] = set()  # what the last command did that is worth counting

    # ---------------------------------------------------------------- reading

    def balance(self, account: int, asset: str) -> tuple[int, int]:
        available, locked = self.balances.get((account, asset), [0, 0])
        return available, locked

    def nonzero_balances(self) -> dict[tuple[int, str], tuple[int, int]]:
        return {k: (v[0], v[1]) for k, v in self.balances.items() if v != [0, 0]}

    # ---------------------------------------------------------------- commands

    def apply(self, command: Command, time: int | None = None) -> Result:
        if time is not None:
            self.time = max(self.time, time)
        self.notes = set()
        try:
            if isinstance(command, PlaceOco):
                return self._place_oco(command)
            if isinstance(command, ExpireOrders):
                return self._expire_due()
            if isinstance(command, PlaceOrder):
                return self._place(command)
            if isinstance(command, CancelOrder):
                return self._cancel(command)
            if isinstance(command, CancelAllOrders):
                return self._cancel_all(command)
            if isinstance(command, AmendOrder):
                return self._amend(command)
            if isinstance(command, Credit):
                return self._credit(command)
            if isinstance(command, UpsertMarket):
                return self._upsert(command)
            if isinstance(command, AddAsset):
                self.scales[command.asset] = command.scale
                return Result()
        except Reject as reject:
            return Result(reject=reject.code)
        raise NotImplementedError(type(command).__name__)

    def _upsert(self, cmd: UpsertMarket) -> Result:
        if not (0 <= cmd.maker_fee_ppm <= MAX_FEE_PPM and 0 <= cmd.taker_fee_ppm <= MAX_FEE_PPM):
            raise Reject(RejectCode.INVALID_MARKET)
        old = self.markets.get(cmd.symbol)
        market = MMarket(
            symbol=cmd.symbol,
            base=cmd.base_asset,
            quote=cmd.quote_asset,
            base_unit=10 ** self.scales[cmd.base_asset],
            tick=cmd.tick_size,
            lot=cmd.lot_size,
            min_quantity=cmd.min_quantity,
            min_notional=cmd.min_notional,
            maker_ppm=cmd.maker_fee_ppm,
            taker_ppm=cmd.taker_fee_ppm,
            halted=cmd.status is MarketStatus.HALTED,
            stp=cmd.self_trade_prevention,
            resting=[] if old is None else old.resting,
            waiting=[] if old is None else old.waiting,
            last_price=None if old is None else old.last_price,
        )
        self.markets[cmd.symbol] = market
        return Result()

    def _credit(self, cmd: Credit) -> Result:
        if cmd.asset not in self.scales:
            raise Reject(RejectCode.UNKNOWN_ASSET)
        if cmd.account_id in SYSTEM or cmd.account_id <= 0:
            raise Reject(RejectCode.ACCOUNT_NOT_ALLOWED)
        if not 0 < cmd.amount < MAX_UNITS:
            raise Reject(RejectCode.INVALID_AMOUNT)
        self._add(cmd.account_id, cmd.asset, cmd.amount, 0)
        self._add(EXTERNAL_ACCOUNT, cmd.asset, -cmd.amount, 0)
        self.credited[cmd.asset] = self.credited.get(cmd.asset, 0) + cmd.amount
        return Result()

    def _expire_due(self) -> Result:
        """Every open GTD order whose time has come, earliest expiry first, then by id."""
        result = Result()
        due = [o for o in self.open.values() if o.expire_time is not None and o.expire_time <= self.time]
        for order in sorted(due, key=lambda o: (o.expire_time, o.order_id)):
            self._take_off(order, OrderStatus.EXPIRED)
            result.touched[order.order_id] = OrderStatus.EXPIRED
        return result

    def _cancel(self, cmd: CancelOrder) -> Result:
        order = self.open.get(cmd.order_id)
        if order is None or order.account != cmd.account_id:
            raise Reject(RejectCode.ORDER_NOT_FOUND)
        self._take_off(order, OrderStatus.CANCELED)
        result = Result(order=order)
        sibling = self.open.get(order.linked) if order.linked is not None else None
        if sibling is not None:  # canceling either order of an OCO list cancels both
            self._take_off(sibling, OrderStatus.CANCELED)
            result.touched[sibling.order_id] = OrderStatus.CANCELED
        return result

    def _cancel_all(self, cmd: CancelAllOrders) -> Result:
        if cmd.symbol not in self.markets:
            raise Reject(RejectCode.UNKNOWN_SYMBOL)
        result = Result()
        for order_id in sorted(self.open):
            order = self.open[order_id]
            if order.account == cmd.account_id and order.symbol == cmd.symbol:
                self._take_off(order, OrderStatus.CANCELED)
                result.touched[order_id] = OrderStatus.CANCELED
        return result

    def _amend(self, cmd: AmendOrder) -> Result:
        order = self.open.get(cmd.order_id)
        if order is None or order.account != cmd.account_id:
            raise Reject(RejectCode.ORDER_NOT_FOUND)
        if order.status is OrderStatus.UNTRIGGERED or order.price is None:
            raise Reject(RejectCode.INVALID_ORDER)
        if order.iceberg is not None or order.linked is not None:
            raise Reject(RejectCode.INVALID_ORDER)
        if cmd.quantity is None and cmd.price is None:
            raise Reject(RejectCode.INVALID_ORDER)
        market = self.markets[order.symbol]
        if market.halted:
            raise Reject(RejectCode.MARKET_HALTED)
        assert order.quantity is not None
        quantity = order.quantity if cmd.quantity is None else cmd.quantity
        price = order.price if cmd.price is None else cmd.price
        if cmd.price is not None and (not 0 < price < MAX_UNITS or price % market.tick):
            raise Reject(RejectCode.INVALID_PRICE)
        if cmd.quantity is not None:
            self._check_quantity(quantity, market)
        if quantity <= order.filled:
            raise Reject(RejectCode.INVALID_QUANTITY)
        remaining = quantity - order.filled
        if remaining * price // market.base_unit >= MAX_UNITS:
            raise Reject(RejectCode.INVALID_QUANTITY)
        buy = order.side is Side.BUY
        needed = ceil_div(remaining * price, market.base_unit) if buy else remaining
        if price == order.price and quantity <= order.quantity:  # keeps its place
            order.quantity = quantity
            if order.hold > needed:
                self._add(order.account, order.hold_asset, order.hold - needed, needed - order.hold)
                order.hold = needed
            return Result(order=order)
        if ceil_div(quantity * price, market.base_unit) < market.min_notional:
            raise Reject(RejectCode.BELOW_MIN_NOTIONAL)
        if order.post_only:
            opposite = market.asks() if buy else market.bids()
            if opposite and self._crosses(order.side, price, opposite[0].price or 0):
                raise Reject(RejectCode.POST_ONLY_WOULD_TAKE)
        extra = needed - order.hold
        if extra > self.balance(order.account, order.hold_asset)[0]:
            raise Reject(RejectCode.INSUFFICIENT_FUNDS)
        market.resting.remove(order)
        del self.open[order.order_id]
        order.quantity, order.price = quantity, price
        self._add(order.account, order.hold_asset, -extra, extra)
        order.hold += extra
        result = self._execute(order, market, order.hold, held=True)
        self._run_triggers(market, result)
        return result

    # ---------------------------------------------------------------- placing

    def _place(self, cmd: PlaceOrder) -> Result:
        market = self.markets.get(cmd.symbol)
        if market is None:
            raise Reject(RejectCode.UNKNOWN_SYMBOL)
        if market.halted:
            raise Reject(RejectCode.MARKET_HALTED)
        if cmd.account_id in SYSTEM or cmd.account_id <= 0:
            raise Reject(RejectCode.ACCOUNT_NOT_ALLOWED)
        if cmd.client_order_id is not None:
            if not COID.fullmatch(cmd.client_order_id):
                raise Reject(RejectCode.INVALID_ORDER)
            if any(
                o.account == cmd.account_id and o.client_order_id == cmd.client_order_id
                for o in self.open.values()
            ):
                raise Reject(RejectCode.DUPLICATE_CLIENT_ORDER_ID)
        if sum(o.account == cmd.account_id for o in self.open.values()) >= MAX_OPEN_ORDERS:
            raise Reject(RejectCode.TOO_MANY_OPEN_ORDERS)
        if cmd.time_in_force is TimeInForce.GTD:
            if cmd.order_type not in PRICED or cmd.expire_time is None:
                raise Reject(RejectCode.INVALID_ORDER)
            if not self.time < cmd.expire_time < MAX_UNITS:  # must be in the future
                raise Reject(RejectCode.INVALID_ORDER)
        elif cmd.expire_time is not None:
            raise Reject(RejectCode.INVALID_ORDER)
        if cmd.iceberg_quantity is not None:
            shown = cmd.iceberg_quantity
            if cmd.order_type is not OrderType.LIMIT or cmd.time_in_force not in RESTING:
                raise Reject(RejectCode.INVALID_ORDER)
            if not 0 < shown < MAX_UNITS or shown % market.lot or shown < market.min_quantity:
                raise Reject(RejectCode.INVALID_QUANTITY)
            if cmd.quantity is None or shown >= cmd.quantity:
                raise Reject(RejectCode.INVALID_QUANTITY)
        trailing = cmd.order_type is OrderType.TRAILING_STOP
        if not trailing and (cmd.trailing_offset, cmd.trailing_ppm, cmd.activation_price) != (None,) * 3:
            raise Reject(RejectCode.INVALID_ORDER)
        if cmd.order_type not in CONDITIONAL and not trailing and cmd.stop_price is not None:
            raise Reject(RejectCode.INVALID_ORDER)
        stp = cmd.self_trade_prevention or market.stp
        buy = cmd.side is Side.BUY
        order = MOrder(
            order_id=self.next_order_id,
            account=cmd.account_id,
            symbol=cmd.symbol,
            side=cmd.side,
            kind=cmd.order_type,
            price=cmd.price,
            quantity=cmd.quantity,
            quote_quantity=cmd.quote_quantity,
            tif=cmd.time_in_force,
            stp=stp,
            client_order_id=cmd.client_order_id,
            hold_asset=market.quote if buy else market.base,
            post_only=cmd.post_only,
            expire_time=cmd.expire_time,
            iceberg=cmd.iceberg_quantity,
        )
        if trailing:
            return self._place_trailing(cmd, market, order)
        if cmd.order_type in CONDITIONAL:
            return self._place_conditional(cmd, market, order)
        if cmd.order_type is OrderType.LIMIT:
            hold = self._limit_hold(cmd, market)
        else:
            hold = self._market_hold(cmd, market, order)
            order.tif = TimeInForce.FOK if cmd.time_in_force is TimeInForce.FOK else TimeInForce.IOC
        if hold > self.balance(cmd.account_id, order.hold_asset)[0]:
            raise Reject(RejectCode.INSUFFICIENT_FUNDS)
        self.next_order_id += 1
        if order.tif is TimeInForce.FOK and not self._would_fill(order, hold):
            order.status = OrderStatus.EXPIRED
            return Result(order=order)
        # A market order that can afford nothing still meets self-trade prevention in the match.
        result = self._execute(order, market, hold)
        self._run_triggers(market, result)
        return result

    # ---------------------------------------------------------------- OCO lists

    def _place_oco(self, cmd: PlaceOco) -> Result:
        """A post-only limit order and a stop for one quantity, held once by the limit order."""
        market = self.markets.get(cmd.symbol)
        if market is None:
            raise Reject(RejectCode.UNKNOWN_SYMBOL)
        sell = cmd.side is Side.SELL
        if cmd.price <= cmd.stop_price if sell else cmd.price >= cmd.stop_price:
            raise Reject(RejectCode.INVALID_PRICE)
        if not sell and cmd.stop_limit_price is None:
            raise Reject(RejectCode.INVALID_ORDER)
        stop_kind = OrderType.STOP_MARKET if cmd.stop_limit_price is None else OrderType.STOP_LIMIT
        limit_leg = PlaceOrder(
            cmd.account_id,
            cmd.symbol,
            cmd.side,
            OrderType.LIMIT,
            quantity=cmd.quantity,
            price=cmd.price,
            post_only=True,
            client_order_id=cmd.client_order_id,
        )
        stop_leg = PlaceOrder(
            cmd.account_id,
            cmd.symbol,
            cmd.side,
            stop_kind,
            quantity=cmd.quantity,
            price=cmd.stop_limit_price,
            stop_price=cmd.stop_price,
        )
        if sum(o.account == cmd.account_id for o in self.open.values()) + 2 > MAX_OPEN_ORDERS:
            raise Reject(RejectCode.TOO_MANY_OPEN_ORDERS)
        need = self._limit_hold(limit_leg, market)  # the limit order's checks first
        stop = cmd.stop_price
        if not 0 < stop < MAX_UNITS or stop % market.tick:
            raise Reject(RejectCode.INVALID_PRICE)
        last = market.last_price
        if last is not None and (last >= stop if rises(stop_kind, cmd.side) else last <= stop):
            raise Reject(RejectCode.STOP_WOULD_TRIGGER)
        if stop_kind is OrderType.STOP_LIMIT:
            need = max(need, self._limit_hold(stop_leg, market))
        else:
            need = max(need, self._stop_market_hold(stop_leg, market))
        hold_asset = market.base if sell else market.quote
        if need > self.balance(cmd.account_id, hold_asset)[0]:
            raise Reject(RejectCode.INSUFFICIENT_FUNDS)
        result = self._place(limit_leg)  # its own checks again (halted, account, client id...)
        limit = result.order
        assert limit is not None and limit.order_id in self.open and not result.trades
        stop_order = MOrder(
            order_id=self.next_order_id,
            account=cmd.account_id,
            symbol=cmd.symbol,
            side=cmd.side,
            kind=stop_kind,
            price=cmd.stop_limit_price,
            quantity=cmd.quantity,
            quote_quantity=None,
            tif=TimeInForce.GTC,
            stp=limit.stp,
            client_order_id=None,
            hold_asset=hold_asset,
            status=OrderStatus.UNTRIGGERED,
            stop=stop,
            linked=limit.order_id,
        )
        self.next_order_id += 1
        limit.linked = stop_order.order_id
        market.waiting.append(stop_order)
        self.open[stop_order.order_id] = stop_order
        if need > limit.hold:  # a buy's stop may need more than its limit order
            self._add(cmd.account_id, hold_asset, limit.hold - need, need - limit.hold)
            limit.hold = need
        result.touched[stop_order.order_id] = OrderStatus.UNTRIGGERED
        return result

    @staticmethod
    def _oco_stop_need(order: MOrder, market: MMarket) -> int:
        if order.side is Side.SELL:
            return order.remaining
        assert order.price is not None
        return ceil_div(order.remaining * order.price, market.base_unit)

    # ---------------------------------------------------------------- conditional orders

    def _place_conditional(self, cmd: PlaceOrder, market: MMarket, order: MOrder) -> Result:
        """Checked like the order it becomes, held from now, waiting off the book."""
        stop = cmd.stop_price
        if stop is None or not 0 < stop < MAX_UNITS or stop % market.tick:
            raise Reject(RejectCode.INVALID_PRICE)
        if cmd.post_only:
            raise Reject(RejectCode.INVALID_ORDER)
        last = market.last_price
        if last is not None and (last >= stop if rises(order.kind, order.side) else last <= stop):
            raise Reject(RejectCode.STOP_WOULD_TRIGGER)
        if cmd.order_type in (OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
            hold = self._limit_hold(cmd, market)
        else:
            hold = self._stop_market_hold(cmd, market)
            order.tif = TimeInForce.IOC
        order.stop = stop
        return self._wait(order, market, hold)

    def _wait(self, order: MOrder, market: MMarket, hold: int) -> Result:
        if hold > self.balance(order.account, order.hold_asset)[0]:
            raise Reject(RejectCode.INSUFFICIENT_FUNDS)
        self.next_order_id += 1
        order.status = OrderStatus.UNTRIGGERED
        self._add(order.account, order.hold_asset, -hold, hold)
        order.hold = hold
        market.waiting.append(order)
        self.open[order.order_id] = order
        return Result(order=order)

    def _stop_market_hold(self, cmd: PlaceOrder, market: MMarket) -> int:
        """A sell holds its quantity, a buy the quote amount it may spend."""
        if cmd.price is not None or cmd.time_in_force is TimeInForce.FOK:
            raise Reject(RejectCode.INVALID_ORDER)
        if cmd.side is Side.SELL:
            if cmd.quantity is None or cmd.quote_quantity is not None:
                raise Reject(RejectCode.INVALID_ORDER)
            self._check_quantity(cmd.quantity, market)
            return cmd.quantity
        if cmd.quote_quantity is None or cmd.quantity is not None:
            raise Reject(RejectCode.INVALID_ORDER)
        if not 0 < cmd.quote_quantity < MAX_UNITS:
            raise Reject(RejectCode.INVALID_QUANTITY)
        if cmd.quote_quantity < market.min_notional:
            raise Reject(RejectCode.BELOW_MIN_NOTIONAL)
        return cmd.quote_quantity

    # ---------------------------------------------------------------- trailing stops

    def _place_trailing(self, cmd: PlaceOrder, market: MMarket, order: MOrder) -> Result:
        """A stop-market whose stop trails the best price since it started trailing."""
        if cmd.stop_price is not None or cmd.post_only:
            raise Reject(RejectCode.INVALID_ORDER)
        offset, ppm, activation = cmd.trailing_offset, cmd.trailing_ppm, cmd.activation_price
        if (offset is None) == (ppm is None):
            raise Reject(RejectCode.INVALID_ORDER)
        if offset is not None and not (0 < offset < MAX_UNITS and offset % market.tick == 0):
            raise Reject(RejectCode.INVALID_PRICE)
        if ppm is not None and ppm not in TRAILING_PPM:
            raise Reject(RejectCode.INVALID_ORDER)
        if activation is not None and not (0 < activation < MAX_UNITS and activation % market.tick == 0):
            raise Reject(RejectCode.INVALID_PRICE)
        hold = self._stop_market_hold(cmd, market)
        order.tif = TimeInForce.IOC
        order.trail_offset, order.trail_ppm = offset, ppm
        last = market.last_price
        if last is not None and (activation is None or self._reached(order, activation, last)):
            self._trail_from(order, market, last)  # trailing from the last price already
        else:
            order.activation = activation  # waits for it, or (None) for the first trade
        return self._wait(order, market, hold)

    @staticmethod
    def _reached(order: MOrder, activation: int, price: int) -> bool:
        """A sell starts trailing when the price has risen to its activation; a buy, fallen."""
        return price >= activation if order.side is Side.SELL else price <= activation

    @staticmethod
    def _trail_from(order: MOrder, market: MMarket, best: int) -> None:
        if order.trail_offset is not None:
            distance = order.trail_offset
        else:
            distance = ceil_div(best * (order.trail_ppm or 0), 1_000_000)
        order.activation, order.extreme = None, best
        tick = market.tick
        if order.side is Side.SELL:  # below the best price, rounded down onto the tick
            order.stop = max(0, (best - distance) // tick * tick)
        else:  # above it, rounded up onto the tick
            order.stop = min(MAX_UNITS - 1, ceil_div(best + distance, tick) * tick)

    def _walk_trail(self, order: MOrder, market: MMarket, prices: list[int]) -> bool:
        """The trades of a round, in order, for one trailing stop: True once one reaches it."""
        sell = order.side is Side.SELL
        for price in prices:
            if order.extreme is None:  # not trailing yet
                if order.activation is None or self._reached(order, order.activation, price):
                    self._trail_from(order, market, price)
                continue
            stop = order.stop or 0
            if price <= stop if sell else price >= stop:
                return True
            if price > order.extreme if sell else price < order.extreme:
                self._trail_from(order, market, price)
        return False

    def _run_triggers(self, market: MMarket, result: Result) -> None:
        """Rounds: the prices of the trades not yet looked at reach some stops; those orders act
        in the order they were placed; their trades are the next round's."""
        looked_at = 0
        while looked_at < len(result.trades):
            prices = [t.price for t in result.trades[looked_at:]]
            looked_at = len(result.trades)
            low, high = min(prices), max(prices)
            due = []
            for o in market.waiting:
                if o.kind is OrderType.TRAILING_STOP:
                    state = (o.activation, o.extreme, o.stop)
                    if self._walk_trail(o, market, prices):
                        due.append(o)
                    elif (o.activation, o.extreme, o.stop) != state:
                        result.touched[o.order_id] = OrderStatus.UNTRIGGERED  # its stop moved
                elif (o.stop or 0) <= high if rises(o.kind, o.side) else (o.stop or 0) >= low:
                    due.append(o)
            for order in sorted(due, key=lambda o: o.order_id):
                if order.status is not OrderStatus.UNTRIGGERED:
                    # An OCO stop whose limit order an order triggered before it in this round
                    # filled: it expired with that fill, and does not act.
                    self.notes.add("OCO stop expired while due to trigger")
                    continue
                market.waiting.remove(order)
                del self.open[order.order_id]
                order.status = OrderStatus.NEW
                if order.linked is not None and order.hold == 0:
                    # The stop of an OCO list: its limit order goes, the list's funds come here.
                    sibling = self.open.get(order.linked)
                    if sibling is not None:
                        self._take_off(sibling, OrderStatus.EXPIRED)
                        result.touched[sibling.order_id] = OrderStatus.EXPIRED
                        self.notes.add("OCO stop triggered: limit expired")
                    need = self._oco_stop_need(order, market)
                    self._add(order.account, order.hold_asset, -need, need)
                    order.hold = need
                if order.tif is TimeInForce.FOK and not self._would_fill(order, order.hold):
                    order.status = OrderStatus.EXPIRED
                    self._release(order)
                else:
                    self._execute(order, market, order.hold, held=True, result=result)
                result.touched[order.order_id] = order.status
        if result.order is not None:
            # The command's own order is reported as itself (in its final state), not as touched,
            # even when a triggered order traded with it.
            result.touched.pop(result.order.order_id, None)

    def _limit_hold(self, cmd: PlaceOrder, market: MMarket) -> int:
        if cmd.price is None:
            raise Reject(RejectCode.INVALID_PRICE)
        if cmd.quantity is None:
            raise Reject(RejectCode.INVALID_QUANTITY)
        if cmd.quote_quantity is not None:
            raise Reject(RejectCode.INVALID_ORDER)
        if cmd.post_only and cmd.time_in_force not in RESTING:
            raise Reject(RejectCode.INVALID_ORDER)
        if not 0 < cmd.price < MAX_UNITS or cmd.price % market.tick:
            raise Reject(RejectCode.INVALID_PRICE)
        self._check_quantity(cmd.quantity, market)
        cost = ceil_div(cmd.quantity * cmd.price, market.base_unit)
        if cost >= MAX_UNITS:
            raise Reject(RejectCode.INVALID_QUANTITY)
        if cost < market.min_notional:
            raise Reject(RejectCode.BELOW_MIN_NOTIONAL)
        if cmd.post_only:
            opposite = market.asks() if cmd.side is Side.BUY else market.bids()
            if opposite and self._crosses(cmd.side, cmd.price, opposite[0].price or 0):
                raise Reject(RejectCode.POST_ONLY_WOULD_TAKE)
        return cost if cmd.side is Side.BUY else cmd.quantity

    def _market_hold(self, cmd: PlaceOrder, market: MMarket, order: MOrder) -> int:
        if cmd.price is not None or cmd.post_only:
            raise Reject(RejectCode.INVALID_ORDER)
        if (cmd.quantity is None) == (cmd.quote_quantity is None):
            raise Reject(RejectCode.INVALID_ORDER)
        if cmd.quantity is not None:
            self._check_quantity(cmd.quantity, market)
            if cmd.side is Side.SELL:
                return cmd.quantity
            return self._dry_run(order).quote_filled  # what the book would cost
        assert cmd.quote_quantity is not None
        if cmd.time_in_force is TimeInForce.FOK:
            raise Reject(RejectCode.INVALID_ORDER)
        if not 0 < cmd.quote_quantity < MAX_UNITS:
            raise Reject(RejectCode.INVALID_QUANTITY)
        if cmd.quote_quantity < market.min_notional:
            raise Reject(RejectCode.BELOW_MIN_NOTIONAL)
        if cmd.side is Side.BUY:
            return cmd.quote_quantity
        return self._dry_run(order).filled  # the base the book would take for that quote

    @staticmethod
    def _check_quantity(quantity: int, market: MMarket) -> None:
        if not 0 < quantity < MAX_UNITS or quantity % market.lot:
            raise Reject(RejectCode.INVALID_QUANTITY)
        if quantity < market.min_quantity:
            raise Reject(RejectCode.BELOW_MIN_QUANTITY)

    @staticmethod
    def _crosses(side: Side, limit: int, maker_price: int) -> bool:
        return maker_price <= limit if side is Side.BUY else maker_price >= limit

    def _dry_run(self, order: MOrder, hold: int = MAX_UNITS) -> MOrder:
        """Match a copy of ``order`` against a copy of the model with unlimited funds."""
        twin = copy.deepcopy(self)
        probe = copy.deepcopy(order)
        twin._match(probe, twin.markets[order.symbol], hold, settle=False)
        return probe

    def _would_fill(self, order: MOrder, hold: int) -> bool:
        assert order.quantity is not None
        return self._dry_run(order, hold).filled == order.quantity

    def would_stop_on_self_trade(self, cmd: PlaceOrder) -> bool:
        """Whether a limit order would meet its own account's resting order and stop there."""
        market = self.markets[cmd.symbol]
        stp = cmd.self_trade_prevention or market.stp
        if stp is STP.EXPIRE_MAKER or cmd.price is None:
            return False
        for maker in market.asks() if cmd.side is Side.BUY else market.bids():
            if not self._crosses(cmd.side, cmd.price, maker.price or 0):
                return False
            if maker.account == cmd.account_id:
                return True
        return False

    # ---------------------------------------------------------------- matching

    def _execute(
        self, order: MOrder, market: MMarket, hold: int, *, held: bool = False, result: Result | None = None
    ) -> Result:
        """``held``: a triggered conditional order, whose funds are locked already."""
        if not held:
            self._add(order.account, order.hold_asset, -hold, hold)
        order.hold = hold
        if result is None:
            result = Result(order=order)
        stop = self._match(order, market, hold, settle=True, result=result)
        if self._complete(order, stop):
            order.status = OrderStatus.FILLED
        elif order.kind in PRICED and order.tif in RESTING and stop != "self-trade":
            if order.side is Side.BUY and order.price is not None:
                # A buy that filled below its limit keeps only what its rest needs locked.
                needed = -(-order.remaining * order.price // market.base_unit)
                self._add(order.account, order.hold_asset, order.hold - needed, needed - order.hold)
                order.hold = needed
            if order.iceberg is not None and order.shown_left is None:
                order.shown_left = min(order.iceberg, order.remaining)  # the first slice
            market.resting.append(order)
            self.open[order.order_id] = order
            return result
        else:
            order.status = OrderStatus.EXPIRED
        self._release(order)
        return result

    @staticmethod
    def _complete(order: MOrder, stop: str) -> bool:
        """Filled: its quantity is reached, or (sized in quote) its budget is used up."""
        if order.quantity is not None:
            return order.remaining == 0
        if stop == "budget":
            return order.filled > 0
        spent = order.quote_filled == order.quote_quantity
        return stop == "book" and spent and QUOTE_EXACT_EXPIRES not in KNOWN_BUGS

    def _match(
        self, taker: MOrder, market: MMarket, hold: int, *, settle: bool, result: Result | None = None
    ) -> str:
        """Fill ``taker`` at the makers' prices; returns why it stopped."""
        buy = taker.side is Side.BUY
        taker.hold = hold
        while True:
            opposite = market.asks() if buy else market.bids()
            if not opposite:
                return "book"
            maker = opposite[0]
            price = maker.price or 0
            if taker.price is not None and not self._crosses(taker.side, taker.price, price):
                return "limit"
            if maker.account == taker.account:
                if taker.stp is not STP.EXPIRE_TAKER:
                    self._take_off(maker, OrderStatus.EXPIRED)
                    if result is not None:
                        result.touched[maker.order_id] = OrderStatus.EXPIRED
                    sibling = self.open.get(maker.linked) if maker.linked is not None else None
                    if sibling is not None:  # an OCO list ends with its limit order
                        if settle:
                            self.notes.add("OCO limit ended by self-trade prevention")
                        self._take_off(sibling, OrderStatus.EXPIRED)
                        if result is not None:
                            result.touched[sibling.order_id] = OrderStatus.EXPIRED
                if taker.stp is not STP.EXPIRE_MAKER:
                    return "self-trade"
                continue
            take = maker.shown
            if taker.quantity is not None:
                take = min(take, taker.remaining)
            if taker.quote_quantity is not None:
                lots = (taker.quote_quantity - taker.quote_filled) * market.base_unit // price // market.lot
                take = min(take, lots * market.lot)
                if take <= 0:
                    return "budget"
            if buy:
                take = min(take, taker.hold * market.base_unit // price // market.lot * market.lot)
            else:
                take = min(take, taker.hold)
            if take <= 0:
                return "budget" if taker.quote_quantity is not None else "funds"
            self._fill(taker, maker, market, price, take, settle, result)
            if taker.quantity is not None and taker.remaining == 0:
                return "done"

    def _fill(
        self,
        taker: MOrder,
        maker: MOrder,
        market: MMarket,
        price: int,
        quantity: int,
        settle: bool,
        result: Result | None,
    ) -> None:
        quote, remainder = divmod(quantity * price, market.base_unit)
        assert remainder == 0, "tick x lot guarantees whole quote amounts"
        buyer, seller = (taker, maker) if taker.side is Side.BUY else (maker, taker)
        buyer_ppm, seller_ppm = (
            (market.taker_ppm, market.maker_ppm) if taker is buyer else (market.maker_ppm, market.taker_ppm)
        )
        buyer_fee = ceil_div(quantity * buyer_ppm, 1_000_000)
        seller_fee = ceil_div(quote * seller_ppm, 1_000_000)
        for order, spent in ((buyer, quote), (seller, quantity)):
            order.filled += quantity
            order.quote_filled += quote
            order.hold -= spent
        buyer.fee += buyer_fee
        seller.fee += seller_fee
        if settle:
            market.last_price = price
            self._add(buyer.account, market.quote, 0, -quote)
            self._add(seller.account, market.base, 0, -quantity)
            self._add(buyer.account, market.base, quantity - buyer_fee, 0)
            self._add(seller.account, market.quote, quote - seller_fee, 0)
            self._add(FEE_ACCOUNT, market.base, buyer_fee, 0)
            self._add(FEE_ACCOUNT, market.quote, seller_fee, 0)
        if result is not None:
            taker_fee, maker_fee = (buyer_fee, seller_fee) if taker is buyer else (seller_fee, buyer_fee)
            result.trades.append(
                MTrade(
                    price,
                    quantity,
                    quote,
                    maker.order_id,
                    taker.order_id,
                    maker.account,
                    taker.account,
                    maker_fee,
                    taker_fee,
                )
            )
        if maker.shown_left is not None:
            maker.shown_left -= quantity
        if maker.remaining == 0:
            self._take_off(maker, OrderStatus.FILLED)
            if result is not None:
                result.touched[maker.order_id] = OrderStatus.FILLED
        else:
            maker.status = OrderStatus.PARTIALLY_FILLED
            if result is not None:
                result.touched[maker.order_id] = OrderStatus.PARTIALLY_FILLED
            if maker.shown_left == 0:  # the next slice, at the back of its level
                assert maker.iceberg is not None
                maker.shown_left = min(maker.iceberg, maker.remaining)
                market.resting.remove(maker)
                market.resting.append(maker)
                if settle:
                    self.notes.add("iceberg refilled")
        sibling = self.open.get(maker.linked) if maker.linked is not None else None
        if sibling is not None and sibling.status is OrderStatus.UNTRIGGERED:
            # The limit order of an OCO list traded: its stop goes; a buy keeps only its own need.
            self._take_off(sibling, OrderStatus.EXPIRED)
            if result is not None:
                result.touched[sibling.order_id] = OrderStatus.EXPIRED
            if settle:
                self.notes.add("OCO limit filled: stop expired")
            if maker.order_id in self.open and maker.side is Side.BUY and maker.price is not None:
                needed = ceil_div(maker.remaining * maker.price, market.base_unit)
                if maker.hold > needed:
                    self._add(maker.account, maker.hold_asset, maker.hold - needed, needed - maker.hold)
                    maker.hold = needed
        taker.status = OrderStatus.PARTIALLY_FILLED

    # ---------------------------------------------------------------- balances

    def _take_off(self, order: MOrder, status: OrderStatus) -> None:
        market = self.markets[order.symbol]
        (market.waiting if order.status is OrderStatus.UNTRIGGERED else market.resting).remove(order)
        self.open.pop(order.order_id, None)
        order.status = status
        self._release(order)

    def _release(self, order: MOrder) -> None:
        self._add(order.account, order.hold_asset, order.hold, -order.hold)
        order.hold = 0

    def _add(self, account: int, asset: str, available: int, locked: int) -> None:
        balance = self.balances.setdefault((account, asset), [0, 0])
        balance[0] += available
        balance[1] += locked
