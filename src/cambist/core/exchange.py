"""The exchange core: one deterministic state machine for assets, balances, books and orders.

``apply(command, seq, time)`` runs risk → match → settle for one command and returns an
``Outcome``. A command is fully validated before anything is touched, so a rejected command
changes nothing. Every balance change is a double-entry ledger posting. ``take_changes``
hands the engine everything changed since the previous call, to persist in one transaction.

Cheap invariants run on every command (touched balances never negative, every posting sums
to zero per asset, the book is never crossed); ``checks.check_invariants`` does the full scan.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from sortedcontainers import SortedList

from cambist.core.book import BookSide, OrderBook
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
from cambist.core.events import (
    AssetView,
    BalanceView,
    Changes,
    CoreSnapshot,
    LedgerEntry,
    MarketView,
    OrderView,
    Outcome,
    Trade,
)
from cambist.core.numbers import MAX_SCALE, MAX_UNITS, POW10, fee_for
from cambist.core.orders import Order
from cambist.core.statehash import StateHasher, asset_key, balance_key, market_key
from cambist.core.types import (
    CONDITIONAL_TYPES,
    EXTERNAL_ACCOUNT,
    FEE_ACCOUNT,
    RESTING_TIFS,
    SYSTEM_ACCOUNTS,
    Bucket,
    MarketStatus,
    MarketType,
    OrderStatus,
    OrderType,
    RejectCode,
    SelfTradePrevention,
    Side,
    TimeInForce,
    triggers_on_rise,
)

ASSET_RE = re.compile(r"^[A-Z0-9]{2,12}$")
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,12}-[A-Z0-9]{2,12}$")
CLIENT_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
MAX_FEE_PPM = 100_000  # 10 %: anything above is a typo, not a fee schedule
MAX_OPEN_ORDERS_PER_ACCOUNT = 1_000
# A trailing distance in parts per million of the price: 0.1 % to 20 %, as Binance allows.
TRAILING_PPM_MIN, TRAILING_PPM_MAX = 1_000, 200_000
LIMIT_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT})


class _Stop(Enum):
    """Why matching stopped for a taker."""

    DONE = "done"  # a quantity-sized order filled completely
    BUDGET = "budget"  # a quote-sized order cannot afford one more lot
    BOOK = "book"  # nothing (more) to trade within the limit price
    SELF_TRADE = "self_trade"  # self-trade prevention expired the taker


def queue_key(order: Order | OrderView) -> tuple[int, int, int]:
    """An open order's place in its book queue, across restarts.

    ``priority`` is the sequence number of the command at which the order took its place. One
    command can queue several orders: its new order first (rank 0), then the orders it
    re-queued (an amended order, conditional orders it triggered) in the order it did
    (``queue_rank`` 1, 2, ...).
    """
    return (order.priority, order.queue_rank, order.order_id)


class InvariantViolation(RuntimeError):
    """A broken invariant is a bug: the engine stops rather than persist a wrong state."""


class Rejected(Exception):
    """Raised inside validation only; turned into a reject ``Outcome`` before anything changed."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Market:
    view: MarketView
    base_scale: int
    book: OrderBook = field(default_factory=OrderBook)
    last_price: int | None = None  # of the last trade: a new conditional order is checked against it
    # Untriggered conditional orders as (stop_price, order_id): those that act when a trade
    # prints at or above their stop, and those that act at or below it.
    on_rise: SortedList = field(default_factory=SortedList)
    on_fall: SortedList = field(default_factory=SortedList)
    # Untriggered trailing stops by id, in placement order: their stops move with each trade.
    trailing: dict[int, Order] = field(default_factory=dict)

    @property
    def base_unit(self) -> int:
        """Units of base in one whole base coin: divides q * price into quote units."""
        return POW10[self.base_scale]


@dataclass(slots=True)
class _CommandScope:
    """What one command touched, for its ``Outcome`` and the cheap always-on checks."""

    orders: dict[int, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    balances: set[tuple[int, str]] = field(default_factory=set)
    markets: set[str] = field(default_factory=set)
    viewed: set[int] = field(default_factory=set)  # orders whose view this command built


class ExchangeCore:
    def __init__(self) -> None:
        self.assets: dict[str, int] = {}  # asset -> scale
        self.markets: dict[str, Market] = {}
        self.balances: dict[tuple[int, str], list[int]] = {}  # -> [available, locked]
        self.orders: dict[int, Order] = {}  # open orders only
        self.client_order_ids: dict[tuple[int, str], int] = {}  # open orders only
        self.open_order_count: dict[int, int] = {}
        self.last_seq = 0
        self.last_time = 0
        self.next_order_id = 1
        self.next_trade_id = 1
        self.next_posting_id = 1
        self._hasher = StateHasher()
        self._requeued = 0
        # Open GTD orders as (expire_time, order_id): ExpireOrders ends those that are due.
        self.expiries: SortedList = SortedList()
        # Entities changed since the hash was last brought up to date: hashing them once per
        # state_hash() call (once per batch in the engine) instead of once per command skips
        # the orders that are born and finished inside a batch, and repeated touches.
        self._unhashed_orders: dict[int, Order] = {}
        self._unhashed_balances: set[tuple[int, str]] = set()
        self._scope = _CommandScope()
        self._dirty_assets: set[str] = set()
        self._dirty_markets: set[str] = set()
        self._dirty_orders: dict[int, Order] = {}
        # The latest view of each dirty order, built once for the command's Outcome and reused
        # by take_changes (every command that touches orders reports them in its Outcome).
        self._dirty_views: dict[int, OrderView] = {}
        self._dirty_balances: set[tuple[int, str]] = set()
        self._books_changed: set[str] = set()
        self._trades: list[Trade] = []
        self._ledger: list[LedgerEntry] = []

    # ------------------------------------------------------------------ public surface

    def apply(self, command: Command, seq: int, time: int) -> Outcome:
        if seq <= self.last_seq:
            raise InvariantViolation(f"sequence {seq} after {self.last_seq}")
        time = max(time, self.last_time)  # the core's clock never runs backwards
        self.last_seq = seq
        self.last_time = time
        self._scope = scope = _CommandScope()
        self._requeued = 0  # orders this command moved to the back of a queue (queue_rank)
        try:
            outcome = self._dispatch(command, seq, time)
        except Rejected as rejected:
            if scope.balances or scope.orders or scope.trades:
                raise InvariantViolation(f"rejected command changed state: {command!r}") from None
            return Outcome(seq=seq, time=time, reject=rejected.code, message=rejected.message)
        self._finish_command(scope)
        return outcome

    def take_changes(self) -> Changes:
        """Everything changed since the last call; the engine persists it atomically."""
        changes = Changes(
            last_seq=self.last_seq,
            last_time=self.last_time,
            state_hash=self.state_hash(),
            next_order_id=self.next_order_id,
            next_trade_id=self.next_trade_id,
            next_posting_id=self.next_posting_id,
            assets=[AssetView(a, self.assets[a]) for a in sorted(self._dirty_assets)],
            markets=[self.markets[s].view for s in sorted(self._dirty_markets)],
            orders=[self._dirty_views.get(oid) or o.view() for oid, o in self._dirty_orders.items()],
            trades=self._trades,
            ledger=self._ledger,
            balances=[self._balance_view(key) for key in sorted(self._dirty_balances)],
            books_changed=sorted(self._books_changed),
        )
        self._reset_changes()
        return changes

    def state_hash(self) -> str:
        """Hash of the whole state, maintained incrementally (see ``statehash``)."""
        self._catch_up_hash()
        return self._hasher.digest(self._counters())

    def _catch_up_hash(self) -> None:
        hasher = self._hasher
        for order_id, order in self._unhashed_orders.items():
            hasher.set(order_id, order.hash_key() if order.is_open else None)
        for key in self._unhashed_balances:
            balance = self.balances.get(key)
            hasher.set(balance_key(*key), None if balance is None else (balance[0], balance[1]))
        self._unhashed_orders = {}
        self._unhashed_balances = set()

    def compute_state_hash(self) -> str:
        """The same hash computed from scratch: used to prove a rebuilt core is exact."""
        hasher = StateHasher()
        for asset, scale in self.assets.items():
            hasher.set(asset_key(asset), (asset, scale))
        for symbol, market in self.markets.items():
            hasher.set(market_key(symbol), market.view)
        for (account, asset), (available, locked) in self.balances.items():
            hasher.set(balance_key(account, asset), (available, locked))
        for order in self.orders.values():
            hasher.set(order.order_id, order.hash_key())
        return hasher.digest(self._counters())

    @classmethod
    def restore(cls, snapshot: CoreSnapshot) -> ExchangeCore:
        core = cls()
        for asset in snapshot.assets:
            core.assets[asset.asset] = asset.scale
            core._hasher.set(asset_key(asset.asset), (asset.asset, asset.scale))
        for market_view in snapshot.markets:
            core.markets[market_view.symbol] = Market(market_view, core.assets[market_view.base_asset])
            core._hasher.set(market_key(market_view.symbol), market_view)
        for balance in snapshot.balances:
            if balance.available or balance.locked:
                key = (balance.account_id, balance.asset)
                core.balances[key] = [balance.available, balance.locked]
                core._hasher.set(balance_key(*key), (balance.available, balance.locked))
        for view in sorted(snapshot.open_orders, key=queue_key):
            order = Order.from_view(view)
            if order.status is OrderStatus.UNTRIGGERED:
                core._park(order, core.markets[order.symbol])
            else:
                core._rest(order, core.markets[order.symbol])
            core._hasher.set(order.order_id, order.hash_key())
        for symbol, price in snapshot.last_prices.items():
            if symbol in core.markets:
                core.markets[symbol].last_price = price
        core.last_seq = snapshot.last_seq
        core.last_time = snapshot.last_time
        core.next_order_id = snapshot.next_order_id
        core.next_trade_id = snapshot.next_trade_id
        core.next_posting_id = snapshot.next_posting_id
        core._reset_changes()
        return core

    def snapshot(self) -> CoreSnapshot:
        return CoreSnapshot(
            last_seq=self.last_seq,
            last_time=self.last_time,
            next_order_id=self.next_order_id,
            next_trade_id=self.next_trade_id,
            next_posting_id=self.next_posting_id,
            assets=[AssetView(a, s) for a, s in sorted(self.assets.items())],
            markets=[m.view for _, m in sorted(self.markets.items())],
            balances=[self._balance_view(key) for key in sorted(self.balances)],
            open_orders=[o.view() for o in sorted(self.orders.values(), key=queue_key)],
            last_prices={
                s: m.last_price for s, m in sorted(self.markets.items()) if m.last_price is not None
            },
        )

    def balance(self, account_id: int, asset: str) -> BalanceView:
        return self._balance_view((account_id, asset))

    def depth(self, symbol: str, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        book = self.markets[symbol].book
        return book.bids.depth(limit), book.asks.depth(limit)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, command: Command, seq: int, time: int) -> Outcome:
        if isinstance(command, PlaceOrder):
            return self._place(command, seq, time)
        if isinstance(command, CancelOrder):
            return self._cancel(command, seq, time)
        if isinstance(command, CancelAllOrders):
            return self._cancel_all(command, seq, time)
        if isinstance(command, AmendOrder):
            return self._amend(command, seq, time)
        if isinstance(command, ExpireOrders):
            return self._expire_due(seq, time)
        if isinstance(command, PlaceOco):
            return self._place_oco(command, seq, time)
        if isinstance(command, Credit):
            return self._credit(command, seq, time)
        if isinstance(command, UpsertMarket):
            return self._upsert_market(command, seq, time)
        if isinstance(command, AddAsset):
            return self._add_asset(command, seq, time)
        raise Rejected(RejectCode.INVALID_ORDER, f"unknown command {type(command).__name__}")

    # ------------------------------------------------------------------ reference data

    def _add_asset(self, cmd: AddAsset, seq: int, time: int) -> Outcome:
        if not ASSET_RE.fullmatch(cmd.asset):
            raise Rejected(RejectCode.INVALID_ASSET, "asset must be 2-12 upper-case letters or digits")
        if not 0 <= cmd.scale <= MAX_SCALE:
            raise Rejected(RejectCode.INVALID_ASSET, f"scale must be between 0 and {MAX_SCALE}")
        current = self.assets.get(cmd.asset)
        if current is not None and current != cmd.scale:
            # Changing the unit under existing amounts would silently rescale them.
            if any(asset == cmd.asset for (_, asset) in self.balances):
                raise Rejected(RejectCode.ASSET_SCALE_LOCKED, "the scale of an asset with balances is fixed")
            if any(
                m.view.base_asset == cmd.asset or m.view.quote_asset == cmd.asset
                for m in self.markets.values()
            ):
                raise Rejected(
                    RejectCode.ASSET_SCALE_LOCKED, "the scale of an asset used by a market is fixed"
                )
        self.assets[cmd.asset] = cmd.scale
        self._hasher.set(asset_key(cmd.asset), (cmd.asset, cmd.scale))
        self._dirty_assets.add(cmd.asset)
        return Outcome(seq=seq, time=time)

    def _upsert_market(self, cmd: UpsertMarket, seq: int, time: int) -> Outcome:
        view = MarketView(
            symbol=cmd.symbol,
            base_asset=cmd.base_asset,
            quote_asset=cmd.quote_asset,
            tick_size=cmd.tick_size,
            lot_size=cmd.lot_size,
            min_quantity=cmd.min_quantity,
            min_notional=cmd.min_notional,
            maker_fee_ppm=cmd.maker_fee_ppm,
            taker_fee_ppm=cmd.taker_fee_ppm,
            status=cmd.status,
            self_trade_prevention=cmd.self_trade_prevention,
            market_type=cmd.market_type,
        )
        self._validate_market(view)
        existing = self.markets.get(cmd.symbol)
        if existing is None:
            self.markets[cmd.symbol] = Market(view, self.assets[cmd.base_asset])
        else:
            if (existing.view.base_asset, existing.view.quote_asset) != (cmd.base_asset, cmd.quote_asset):
                raise Rejected(RejectCode.INVALID_MARKET, "a market's base and quote assets never change")
            grid_changed = (existing.view.tick_size, existing.view.lot_size) != (cmd.tick_size, cmd.lot_size)
            waiting = existing.on_rise or existing.on_fall or existing.trailing
            if grid_changed and (existing.book.bids.levels or existing.book.asks.levels or waiting):
                # Open orders would be left off the new grid: halt and cancel them first.
                raise Rejected(
                    RejectCode.INVALID_MARKET,
                    "tick and lot size can only change while the market has no open orders",
                )
            existing.view = view
        self._hasher.set(market_key(cmd.symbol), view)
        self._dirty_markets.add(cmd.symbol)
        return Outcome(seq=seq, time=time)

    def _validate_market(self, view: MarketView) -> None:
        if not SYMBOL_RE.fullmatch(view.symbol) or view.symbol != f"{view.base_asset}-{view.quote_asset}":
            raise Rejected(RejectCode.INVALID_MARKET, "symbol must be BASE-QUOTE of its two assets")
        for asset in (view.base_asset, view.quote_asset):
            if asset not in self.assets:
                raise Rejected(RejectCode.UNKNOWN_ASSET, f"unknown asset {asset}")
        if view.base_asset == view.quote_asset:
            raise Rejected(RejectCode.INVALID_MARKET, "base and quote must differ")
        base_unit = POW10[self.assets[view.base_asset]]
        if not 0 < view.tick_size < MAX_UNITS or not 0 < view.lot_size < MAX_UNITS:
            raise Rejected(RejectCode.INVALID_MARKET, "tick size and lot size must be positive")
        if (view.tick_size * view.lot_size) % base_unit:
            # Guarantees every trade's quote amount is a whole number of quote units.
            raise Rejected(
                RejectCode.INVALID_MARKET,
                "tick size x lot size must be a whole number of quote-asset units",
            )
        if view.min_quantity < view.lot_size or view.min_quantity % view.lot_size:
            raise Rejected(
                RejectCode.INVALID_MARKET, "minimum quantity must be a positive multiple of the lot"
            )
        if not 0 <= view.min_notional < MAX_UNITS:
            raise Rejected(RejectCode.INVALID_MARKET, "minimum notional must not be negative")
        for fee in (view.maker_fee_ppm, view.taker_fee_ppm):
            if not 0 <= fee <= MAX_FEE_PPM:
                raise Rejected(RejectCode.INVALID_MARKET, "fees must be between 0 and 0.1")

    # ------------------------------------------------------------------ credits

    def _credit(self, cmd: Credit, seq: int, time: int) -> Outcome:
        if cmd.asset not in self.assets:
            raise Rejected(RejectCode.UNKNOWN_ASSET, f"unknown asset {cmd.asset}")
        if cmd.account_id in SYSTEM_ACCOUNTS or cmd.account_id <= 0:
            raise Rejected(RejectCode.ACCOUNT_NOT_ALLOWED, "credits go to user accounts")
        if not 0 < cmd.amount < MAX_UNITS:
            raise Rejected(RejectCode.INVALID_AMOUNT, "amount must be positive")
        available, locked = self.balances.get((cmd.account_id, cmd.asset), (0, 0))
        if available + locked + cmd.amount >= MAX_UNITS:
            raise Rejected(RejectCode.INVALID_AMOUNT, "the balance would exceed the asset's maximum")
        issued = -self.balances.get((EXTERNAL_ACCOUNT, cmd.asset), (0, 0))[0]
        if issued + cmd.amount >= MAX_UNITS:
            raise Rejected(RejectCode.INVALID_AMOUNT, "total credits would exceed the asset's maximum")
        posting = self._new_posting()
        self._post(
            posting,
            seq,
            time,
            EXTERNAL_ACCOUNT,
            cmd.asset,
            Bucket.AVAILABLE,
            -cmd.amount,
            "credit",
            cmd.credit_id,
        )
        self._post(
            posting,
            seq,
            time,
            cmd.account_id,
            cmd.asset,
            Bucket.AVAILABLE,
            cmd.amount,
            "credit",
            cmd.credit_id,
        )
        return Outcome(seq=seq, time=time, balances=(self.balance(cmd.account_id, cmd.asset),))

    # ------------------------------------------------------------------ orders: validation

    def _place(self, cmd: PlaceOrder, seq: int, time: int) -> Outcome:
        market = self.markets.get(cmd.symbol)
        if market is None:
            raise Rejected(RejectCode.UNKNOWN_SYMBOL, f"unknown symbol {cmd.symbol}")
        view = market.view
        if view.status is not MarketStatus.TRADING:
            raise Rejected(RejectCode.MARKET_HALTED, f"{cmd.symbol} is not accepting new orders")
        if cmd.account_id in SYSTEM_ACCOUNTS or cmd.account_id <= 0:
            raise Rejected(RejectCode.ACCOUNT_NOT_ALLOWED, "orders come from user accounts")
        if cmd.client_order_id is not None:
            if not CLIENT_ORDER_ID_RE.fullmatch(cmd.client_order_id):
                raise Rejected(RejectCode.INVALID_ORDER, "clientOrderId must be 1-64 of A-Z a-z 0-9 . _ : -")
            if (cmd.account_id, cmd.client_order_id) in self.client_order_ids:
                raise Rejected(
                    RejectCode.DUPLICATE_CLIENT_ORDER_ID, "an open order already has this clientOrderId"
                )
        if self.open_order_count.get(cmd.account_id, 0) >= MAX_OPEN_ORDERS_PER_ACCOUNT:
            raise Rejected(
                RejectCode.TOO_MANY_OPEN_ORDERS, f"at most {MAX_OPEN_ORDERS_PER_ACCOUNT} open orders"
            )
        self._check_expiry(cmd, time)
        self._check_iceberg(cmd, view)
        if cmd.reduce_only and view.market_type is MarketType.SPOT:
            raise Rejected(
                RejectCode.INVALID_ORDER, "reduceOnly applies to positions: margin and futures markets only"
            )
        stp = cmd.self_trade_prevention or view.self_trade_prevention
        trailing_fields = (cmd.trailing_offset, cmd.trailing_ppm, cmd.activation_price)
        if cmd.order_type is OrderType.TRAILING_STOP:
            return self._place_trailing(cmd, market, stp, seq, time)
        if any(value is not None for value in trailing_fields):
            raise Rejected(RejectCode.INVALID_ORDER, "trailing fields are only for trailing stops")
        if cmd.order_type in CONDITIONAL_TYPES:
            return self._place_conditional(cmd, market, stp, seq, time)
        if cmd.stop_price is not None:
            raise Rejected(RejectCode.INVALID_ORDER, "stopPrice is only for stop and take-profit orders")
        if cmd.order_type is OrderType.LIMIT:
            hold = self._validate_limit(cmd, market)
            tif = cmd.time_in_force
        else:
            hold = self._validate_market_order(cmd, market, stp)
            # A market order never rests: GTC means "as much as possible now", i.e. IOC.
            tif = TimeInForce.FOK if cmd.time_in_force is TimeInForce.FOK else TimeInForce.IOC
        hold_asset = view.quote_asset if cmd.side is Side.BUY else view.base_asset
        if hold > self._available(cmd.account_id, hold_asset):
            raise Rejected(RejectCode.INSUFFICIENT_FUNDS, f"insufficient {hold_asset} available")
        fill_or_kill_fails = tif is TimeInForce.FOK and not self._fok_fillable(cmd, market, stp)
        order = self._new_order(cmd, market, stp, tif, hold_asset, seq, time)
        self._run(order, market, hold, fill_or_kill_fails, seq, time)
        self._run_triggers(seq, time)
        return self._order_outcome(order, seq, time)

    def _place_conditional(
        self, cmd: PlaceOrder, market: Market, stp: SelfTradePrevention, seq: int, time: int
    ) -> Outcome:
        """A stop or take-profit waits, untriggered and with its funds held, until a trade
        prints at or through its stop price (``_run_triggers``)."""
        view = market.view
        stop = cmd.stop_price
        if stop is None:
            raise Rejected(RejectCode.INVALID_PRICE, "a stop or take-profit order needs a stopPrice")
        if not 0 < stop < MAX_UNITS or stop % view.tick_size:
            raise Rejected(RejectCode.INVALID_PRICE, "stopPrice must be positive and on the tick size")
        if cmd.post_only:
            raise Rejected(RejectCode.INVALID_ORDER, "stop and take-profit orders cannot be postOnly")
        on_rise = triggers_on_rise(cmd.order_type, cmd.side)
        last = market.last_price
        if last is not None and (last >= stop if on_rise else last <= stop):
            direction = "at or below" if on_rise else "at or above"
            raise Rejected(
                RejectCode.STOP_WOULD_TRIGGER,
                f"the stop price would trigger immediately: it must be {'above' if on_rise else 'below'} "
                f"the last price (the last trade was {direction} it)",
            )
        if cmd.order_type in LIMIT_TYPES:
            hold = self._validate_limit(cmd, market)
            tif = cmd.time_in_force
        else:
            hold = self._validate_conditional_market(cmd, market)
            tif = TimeInForce.IOC
        hold_asset = view.quote_asset if cmd.side is Side.BUY else view.base_asset
        if hold > self._available(cmd.account_id, hold_asset):
            raise Rejected(RejectCode.INSUFFICIENT_FUNDS, f"insufficient {hold_asset} available")
        order = self._new_order(
            cmd, market, stp, tif, hold_asset, seq, time, status=OrderStatus.UNTRIGGERED, stop_price=stop
        )
        self._touch_order(order)
        self._move_hold(order, hold, seq, time)
        self._park(order, market)
        return self._order_outcome(order, seq, time)

    def _place_trailing(
        self, cmd: PlaceOrder, market: Market, stp: SelfTradePrevention, seq: int, time: int
    ) -> Outcome:
        """A trailing stop: a stop-market whose stop follows the best price since activation."""
        view = market.view
        if cmd.stop_price is not None:
            raise Rejected(RejectCode.INVALID_ORDER, "a trailing stop sets its own stop price")
        if cmd.post_only:
            raise Rejected(RejectCode.INVALID_ORDER, "a trailing stop cannot be postOnly")
        if (cmd.trailing_offset is None) == (cmd.trailing_ppm is None):
            raise Rejected(RejectCode.INVALID_ORDER, "give exactly one of trailingOffset and trailingPercent")
        if cmd.trailing_offset is not None and (
            not 0 < cmd.trailing_offset < MAX_UNITS or cmd.trailing_offset % view.tick_size
        ):
            raise Rejected(RejectCode.INVALID_PRICE, "trailingOffset must be positive and on the tick size")
        if cmd.trailing_ppm is not None and not TRAILING_PPM_MIN <= cmd.trailing_ppm <= TRAILING_PPM_MAX:
            raise Rejected(RejectCode.INVALID_ORDER, "trailingPercent must be between 0.1 and 20")
        activation = cmd.activation_price
        if activation is not None and (not 0 < activation < MAX_UNITS or activation % view.tick_size):
            raise Rejected(RejectCode.INVALID_PRICE, "activationPrice must be positive and on the tick size")
        hold = self._validate_conditional_market(cmd, market)
        hold_asset = view.quote_asset if cmd.side is Side.BUY else view.base_asset
        if hold > self._available(cmd.account_id, hold_asset):
            raise Rejected(RejectCode.INSUFFICIENT_FUNDS, f"insufficient {hold_asset} available")
        order = self._new_order(
            cmd, market, stp, TimeInForce.IOC, hold_asset, seq, time, status=OrderStatus.UNTRIGGERED
        )
        order.trailing_offset, order.trailing_ppm = cmd.trailing_offset, cmd.trailing_ppm
        last = market.last_price
        if last is not None and (activation is None or self._activates(order, activation, last)):
            order.activation_price = None  # reached: it trails from the last price
            self._trail_to(order, market, last)
        else:
            order.activation_price = activation  # trails from its activation, or the first trade
        self._touch_order(order)
        self._move_hold(order, hold, seq, time)
        self._park(order, market)
        return self._order_outcome(order, seq, time)

    @staticmethod
    def _activates(order: Order, activation: int, price: int) -> bool:
        """A sell starts trailing once the price has risen to its activation, a buy once it
        has fallen to it."""
        return price >= activation if order.side is Side.SELL else price <= activation

    @staticmethod
    def _trail_to(order: Order, market: Market, extreme: int) -> None:
        """Set the best price seen and the stop that trails it, on the tick grid and on the
        side that makes it act no earlier than the distance says."""
        tick = market.view.tick_size
        if order.trailing_offset is not None:
            distance = order.trailing_offset
        else:
            assert order.trailing_ppm is not None
            distance = -(-extreme * order.trailing_ppm // 1_000_000)
        order.trail_extreme = extreme
        if order.side is Side.SELL:
            stop = extreme - distance
            order.stop_price = max(stop - stop % tick, 0)
        else:
            stop = extreme + distance
            order.stop_price = min(stop + (-stop) % tick, MAX_UNITS - 1)

    def _follow(self, order: Order, market: Market, price: int) -> bool:
        """One trade for one trailing stop: does it trigger? Else activate or move the stop."""
        if order.activation_price is not None:
            if self._activates(order, order.activation_price, price):
                order.activation_price = None
                self._trail_to(order, market, price)
                return False
            return False
        if order.trail_extreme is None:
            self._trail_to(order, market, price)
            return False
        assert order.stop_price is not None
        if price <= order.stop_price if order.side is Side.SELL else price >= order.stop_price:
            return True
        if price > order.trail_extreme if order.side is Side.SELL else price < order.trail_extreme:
            self._trail_to(order, market, price)
        return False

    def _validate_conditional_market(self, cmd: PlaceOrder, market: Market) -> int:
        """What a stop or take-profit market order holds. Its fill price is unknown until it
        acts, so a sell is sized by quantity and a buy by the quote amount it may spend."""
        view = market.view
        if cmd.price is not None:
            raise Rejected(RejectCode.INVALID_ORDER, "a stop or take-profit market order has no price")
        if cmd.time_in_force is TimeInForce.FOK:
            raise Rejected(RejectCode.INVALID_ORDER, "FOK is for stop-limit and take-profit-limit orders")
        if cmd.side is Side.SELL:
            if cmd.quantity is None or cmd.quote_quantity is not None:
                raise Rejected(
                    RejectCode.INVALID_ORDER, "a stop or take-profit market sell is sized by quantity"
                )
            self._check_quantity(cmd.quantity, view)
            return cmd.quantity
        if cmd.quote_quantity is None or cmd.quantity is not None:
            raise Rejected(
                RejectCode.INVALID_ORDER,
                "a stop or take-profit market buy is sized by quoteQuantity (held until it acts); "
                "use a stop-limit to buy a quantity",
            )
        if not 0 < cmd.quote_quantity < MAX_UNITS:
            raise Rejected(RejectCode.INVALID_QUANTITY, "quoteQuantity must be positive")
        if cmd.quote_quantity < view.min_notional:
            raise Rejected(
                RejectCode.BELOW_MIN_NOTIONAL, "quoteQuantity is below the market's minimum notional"
            )
        return cmd.quote_quantity

    def _validate_limit(self, cmd: PlaceOrder, market: Market) -> int:
        view = market.view
        if cmd.price is None:
            raise Rejected(RejectCode.INVALID_PRICE, "a limit order needs a price")
        if cmd.quantity is None:
            raise Rejected(RejectCode.INVALID_QUANTITY, "a limit order needs a quantity")
        if cmd.quote_quantity is not None:
            raise Rejected(RejectCode.INVALID_ORDER, "quoteQuantity is only for market orders")
        if cmd.post_only and cmd.time_in_force not in RESTING_TIFS:
            raise Rejected(RejectCode.INVALID_ORDER, "postOnly orders rest on the book: use GTC or GTD")
        self._check_price(cmd.price, view)
        self._check_quantity(cmd.quantity, view)
        notional = cmd.quantity * cmd.price
        if notional // market.base_unit >= MAX_UNITS:
            raise Rejected(RejectCode.INVALID_QUANTITY, "price x quantity is too large")
        if -(-notional // market.base_unit) < view.min_notional:
            raise Rejected(
                RejectCode.BELOW_MIN_NOTIONAL, "price x quantity is below the market's minimum notional"
            )
        if cmd.post_only and self._crosses(cmd.side, cmd.price, market):
            raise Rejected(RejectCode.POST_ONLY_WOULD_TAKE, "a postOnly order would trade immediately")
        if cmd.side is Side.BUY:
            return -(-notional // market.base_unit)  # rounded up: the hold always covers the fills
        return cmd.quantity

    def _validate_market_order(self, cmd: PlaceOrder, market: Market, stp: SelfTradePrevention) -> int:
        view = market.view
        if cmd.price is not None:
            raise Rejected(RejectCode.INVALID_ORDER, "a market order has no price")
        if cmd.post_only:
            raise Rejected(RejectCode.INVALID_ORDER, "a market order cannot be postOnly")
        if (cmd.quantity is None) == (cmd.quote_quantity is None):
            raise Rejected(
                RejectCode.INVALID_ORDER, "a market order needs exactly one of quantity and quoteQuantity"
            )
        if cmd.quantity is not None:
            self._check_quantity(cmd.quantity, view)
            if cmd.side is Side.SELL:
                return cmd.quantity
            cost, _ = self._walk(market, Side.BUY, cmd.account_id, stp, quantity=cmd.quantity)
            return cost
        assert cmd.quote_quantity is not None
        if cmd.time_in_force is TimeInForce.FOK:
            raise Rejected(RejectCode.INVALID_ORDER, "FOK market orders are sized by quantity")
        if not 0 < cmd.quote_quantity < MAX_UNITS:
            raise Rejected(RejectCode.INVALID_QUANTITY, "quoteQuantity must be positive")
        if cmd.quote_quantity < view.min_notional:
            raise Rejected(
                RejectCode.BELOW_MIN_NOTIONAL, "quoteQuantity is below the market's minimum notional"
            )
        if cmd.side is Side.BUY:
            return cmd.quote_quantity
        _, base_needed = self._walk(market, Side.SELL, cmd.account_id, stp, quote=cmd.quote_quantity)
        return base_needed

    @staticmethod
    def _check_price(price: int, view: MarketView) -> None:
        if not 0 < price < MAX_UNITS:
            raise Rejected(RejectCode.INVALID_PRICE, "price must be positive")
        if price % view.tick_size:
            raise Rejected(RejectCode.INVALID_PRICE, "price is not a multiple of the tick size")

    @staticmethod
    def _check_quantity(quantity: int, view: MarketView) -> None:
        if not 0 < quantity < MAX_UNITS:
            raise Rejected(RejectCode.INVALID_QUANTITY, "quantity must be positive")
        if quantity % view.lot_size:
            raise Rejected(RejectCode.INVALID_QUANTITY, "quantity is not a multiple of the lot size")
        if quantity < view.min_quantity:
            raise Rejected(RejectCode.BELOW_MIN_QUANTITY, "quantity is below the market's minimum")

    @staticmethod
    def _crosses(side: Side, price: int, market: Market) -> bool:
        if side is Side.BUY:
            best_ask = market.book.asks.best_price()
            return best_ask is not None and best_ask <= price
        best_bid = market.book.bids.best_price()
        return best_bid is not None and best_bid >= price

    def _walk(
        self,
        market: Market,
        side: Side,
        account_id: int,
        stp: SelfTradePrevention,
        *,
        quantity: int | None = None,
        quote: int | None = None,
        limit_price: int | None = None,
    ) -> tuple[int, int]:
        """Dry run of a taker against the book: (quote amount, base quantity) it would trade.

        Skips the account's own orders when they would be canceled (expire_maker) and stops
        at them when the taker would be (expire_taker, expire_both), like the real match.
        """
        opposite = market.book.asks if side is Side.BUY else market.book.bids
        lot = market.view.lot_size
        base_unit = market.base_unit
        quote_total = 0
        base_total = 0
        for level in opposite.iter_levels():
            if limit_price is not None and (
                (side is Side.BUY and level.price > limit_price)
                or (side is Side.SELL and level.price < limit_price)
            ):
                break
            # The level's queue as the match meets it: each order's shown part, and an
            # iceberg's next slices at the back once its shown one is used up.
            queue = deque((maker, maker.shown) for maker in level.orders.values())
            hidden: dict[int, int] = {}
            while queue:
                maker, available = queue.popleft()
                if maker.account_id == account_id:
                    if stp is SelfTradePrevention.EXPIRE_MAKER:
                        continue
                    return quote_total, base_total
                take = available
                if quantity is not None:
                    take = min(take, quantity - base_total)
                if quote is not None:
                    affordable = (quote - quote_total) * base_unit // level.price
                    take = min(take, affordable - affordable % lot)
                if take <= 0:
                    return quote_total, base_total
                base_total += take
                quote_total += take * level.price // base_unit
                if take < available:
                    return quote_total, base_total  # the taker is done within this slice
                if maker.iceberg_quantity is not None:
                    rest = hidden.get(maker.order_id, maker.remaining - maker.shown)
                    if rest > 0:
                        slice_size = min(maker.iceberg_quantity, rest)
                        hidden[maker.order_id] = rest - slice_size
                        queue.append((maker, slice_size))
        return quote_total, base_total

    def _fok_fillable(self, cmd: PlaceOrder, market: Market, stp: SelfTradePrevention) -> bool:
        assert cmd.quantity is not None
        _, base = self._walk(
            market, cmd.side, cmd.account_id, stp, quantity=cmd.quantity, limit_price=cmd.price
        )
        return base >= cmd.quantity

    # ------------------------------------------------------------------ orders: execution

    def _new_order(
        self,
        cmd: PlaceOrder,
        market: Market,
        stp: SelfTradePrevention,
        tif: TimeInForce,
        hold_asset: str,
        seq: int,
        time: int,
        *,
        status: OrderStatus = OrderStatus.NEW,
        stop_price: int | None = None,
    ) -> Order:
        view = market.view
        order = Order(
            order_id=self.next_order_id,
            account_id=cmd.account_id,
            symbol=cmd.symbol,
            side=cmd.side,
            order_type=cmd.order_type,
            time_in_force=tif,
            post_only=cmd.post_only,
            self_trade_prevention=stp,
            client_order_id=cmd.client_order_id,
            price=cmd.price,
            quantity=cmd.quantity,
            quote_quantity=cmd.quote_quantity,
            fee_asset=view.base_asset if cmd.side is Side.BUY else view.quote_asset,
            hold_asset=hold_asset,
            seq=seq,
            time=time,
            status=status,
            stop_price=stop_price,
            expire_time=cmd.expire_time,
            iceberg_quantity=cmd.iceberg_quantity,
            reduce_only=cmd.reduce_only,
        )
        self.next_order_id += 1
        return order

    def _run(self, order: Order, market: Market, hold: int, kill: bool, seq: int, time: int) -> None:
        """Take liquidity, then rest, expire or finish: a new order, or a conditional one that
        just triggered (which holds its funds already: ``hold`` is then 0)."""
        self._touch_order(order)
        if kill:
            # FOK that cannot fill completely: nothing trades, nothing stays held.
            order.transition(OrderStatus.EXPIRED, seq, time)
            self._release_hold(order, seq, time)
            return
        if hold:
            # A market buy that can afford nothing still goes through matching, so self-trade
            # prevention treats its own resting orders the same way as for any other order.
            self._move_hold(order, hold, seq, time)
        stop = self._match(order, market, order.self_trade_prevention, seq, time)
        if order.is_open:
            spent = order.quote_quantity is not None and order.quote_filled == order.quote_quantity
            if (stop is _Stop.BUDGET or spent) and order.filled_quantity:
                # An order sized in quote is complete once what is left cannot buy one lot.
                order.transition(OrderStatus.FILLED, seq, time)
            elif (
                stop is _Stop.BOOK and order.order_type in LIMIT_TYPES and order.time_in_force in RESTING_TIFS
            ):
                self._release_price_improvement(order, market, seq, time)
                self._rest(order, market)
                self._books_changed.add(order.symbol)
                return
            else:
                # IOC/FOK/market remainder, or self-trade prevention stopped the taker.
                order.transition(OrderStatus.EXPIRED, seq, time)
            self._release_hold(order, seq, time)

    # ------------------------------------------------------------------ conditional orders

    def _park(self, order: Order, market: Market) -> None:
        """An untriggered order: open and holding its funds, but off the book."""
        self._register(order)
        if order.order_type is OrderType.TRAILING_STOP:
            market.trailing[order.order_id] = order
            return
        assert order.stop_price is not None
        waiting = market.on_rise if triggers_on_rise(order.order_type, order.side) else market.on_fall
        waiting.add((order.stop_price, order.order_id))

    def _unpark(self, order: Order, market: Market) -> None:
        if order.order_type is OrderType.TRAILING_STOP:
            del market.trailing[order.order_id]
            return
        assert order.stop_price is not None
        waiting = market.on_rise if triggers_on_rise(order.order_type, order.side) else market.on_fall
        waiting.remove((order.stop_price, order.order_id))

    def _run_triggers(self, seq: int, time: int) -> None:
        """Trigger the conditional orders the command's trades reached, and then those that the
        triggered orders' own trades reach, until no new trade reaches another one.

        The trades of a round give each market a price range: every order waiting for a rise
        to a stop at or below the range's top triggers, and every order waiting for a fall to
        a stop at or above its bottom, so a trade that jumps over a stop triggers it too. The
        orders of one round act in the order they were placed (priority, then order id), each
        as a new taker at that moment. Each order triggers at most once: the loop ends.
        """
        trades = self._scope.trades
        checked = 0
        while checked < len(trades):
            ranges: dict[str, tuple[int, int]] = {}
            for trade in trades[checked:]:
                low, high = ranges.get(trade.symbol, (trade.price, trade.price))
                ranges[trade.symbol] = (min(low, trade.price), max(high, trade.price))
            due: list[Order] = self._follow_trades(trades[checked:])
            checked = len(trades)
            for symbol in sorted(ranges):
                market = self.markets[symbol]
                if not (market.on_rise or market.on_fall):
                    continue
                low, high = ranges[symbol]
                # The nearest stop first: usually nothing is in reach, and that costs O(1).
                if market.on_rise and market.on_rise[0][0] <= high:
                    due.extend(
                        self.orders[oid] for _, oid in market.on_rise.irange(maximum=(high, MAX_UNITS))
                    )
                if market.on_fall and market.on_fall[-1][0] >= low:
                    due.extend(self.orders[oid] for _, oid in market.on_fall.irange(minimum=(low, 0)))
            due.sort(key=lambda o: (o.priority, o.order_id))
            for order in due:
                # An earlier order of this round may have ended it (an OCO stop whose limit filled).
                if order.status is OrderStatus.UNTRIGGERED:
                    self._trigger(order, self.markets[order.symbol], seq, time)

    def _follow_trades(self, trades: list[Trade]) -> list[Order]:
        """Walk the trades in order through each market's trailing stops: the stops move with
        the price; those a trade reaches are due (each once)."""
        due: list[Order] = []
        for trade in trades:
            market = self.markets[trade.symbol]
            for order in list(market.trailing.values()):
                if order in due:
                    continue
                before = (order.activation_price, order.trail_extreme, order.stop_price)
                if self._follow(order, market, trade.price):
                    due.append(order)
                elif (order.activation_price, order.trail_extreme, order.stop_price) != before:
                    self._touch_order(order)  # its stop moved: persisted and hashed
        return due

    def _requeue(self, order: Order, seq: int) -> None:
        """The order takes a new place in time: behind everything queued before this command
        and behind what this command queued before it."""
        self._requeued += 1
        order.priority = seq
        order.queue_rank = self._requeued

    def _trigger(self, order: Order, market: Market, seq: int, time: int) -> None:
        """The order acts now, as a new taker keeping its id and its hold. If it comes to rest
        it queues behind everything already there: its place in time is this command's."""
        self._unpark(order, market)
        self._forget(order)  # registered again by _rest if it comes to rest
        self._requeue(order, seq)
        order.transition(OrderStatus.NEW, seq, time)
        if order.linked_order_id is not None and order.hold_remaining == 0:
            # The stop of an OCO list: its limit order goes, and the list's funds come here.
            self._end_linked(order, OrderStatus.EXPIRED, seq, time)
            self._move_hold(order, self._oco_stop_need(order, market), seq, time)
        kill = False
        if order.time_in_force is TimeInForce.FOK:
            assert order.quantity is not None
            _, base = self._walk(
                market,
                order.side,
                order.account_id,
                order.self_trade_prevention,
                quantity=order.quantity,
                limit_price=order.price,
            )
            kill = base < order.quantity
        self._run(order, market, 0, kill, seq, time)

    def _release_price_improvement(self, order: Order, market: Market, seq: int, time: int) -> None:
        """A buy that filled below its limit holds more than its resting rest needs: free it now."""
        if order.side is not Side.BUY or order.price is None:
            return
        needed = -(-order.remaining * order.price // market.base_unit)
        if order.hold_remaining > needed:
            self._release(order, order.hold_remaining - needed, seq, time)

    def _match(self, taker: Order, market: Market, stp: SelfTradePrevention, seq: int, time: int) -> _Stop:
        """Fill ``taker`` against the book at the makers' prices.

        Says why it stopped: the order is filled or its quote budget spent, the book (or the
        limit price) has nothing more for it, or self-trade prevention expired the taker.
        """
        book = market.book
        opposite: BookSide = book.asks if taker.side is Side.BUY else book.bids
        lot = market.view.lot_size
        base_unit = market.base_unit
        while True:
            level = opposite.best()
            if level is None:
                return _Stop.BOOK
            price = level.price
            if taker.price is not None and (
                (taker.side is Side.BUY and price > taker.price)
                or (taker.side is Side.SELL and price < taker.price)
            ):
                return _Stop.BOOK
            while level.orders:
                maker = level.first()
                if maker.account_id == taker.account_id:
                    if stp is not SelfTradePrevention.EXPIRE_TAKER:
                        self._end_resting(maker, market, OrderStatus.EXPIRED, seq, time)
                        self._end_linked(maker, OrderStatus.EXPIRED, seq, time)  # its OCO stop too
                    if stp is not SelfTradePrevention.EXPIRE_MAKER:
                        return _Stop.SELF_TRADE
                    continue
                take = maker.shown
                if taker.quantity is not None:
                    take = min(take, taker.remaining)
                if taker.quote_quantity is not None:
                    affordable = (taker.quote_quantity - taker.quote_filled) * base_unit // price
                    take = min(take, affordable - affordable % lot)
                    if take <= 0:
                        return _Stop.BUDGET
                if taker.side is Side.BUY:
                    affordable = taker.hold_remaining * base_unit // price
                    take = min(take, affordable - affordable % lot)
                else:
                    take = min(take, taker.hold_remaining)
                if take <= 0:
                    return _Stop.BUDGET if taker.quote_quantity is not None else _Stop.BOOK
                self._execute(taker, maker, market, price, take, seq, time)
                if taker.quantity is not None and taker.remaining == 0:
                    return _Stop.DONE
            # the level emptied; the loop looks at the next one

    def _execute(
        self, taker: Order, maker: Order, market: Market, price: int, quantity: int, seq: int, time: int
    ) -> None:
        view = market.view
        base, quote = view.base_asset, view.quote_asset
        quote_amount = quantity * price // market.base_unit
        taker_is_buyer = taker.side is Side.BUY
        buyer, seller = (taker, maker) if taker_is_buyer else (maker, taker)
        buyer_fee = fee_for(quantity, view.taker_fee_ppm if taker_is_buyer else view.maker_fee_ppm)
        seller_fee = fee_for(quote_amount, view.maker_fee_ppm if taker_is_buyer else view.taker_fee_ppm)
        trade_id = self.next_trade_id
        self.next_trade_id += 1
        ref = str(trade_id)
        posting = self._new_posting()
        self._post(posting, seq, time, buyer.account_id, quote, Bucket.LOCKED, -quote_amount, "trade", ref)
        self._post(
            posting,
            seq,
            time,
            seller.account_id,
            quote,
            Bucket.AVAILABLE,
            quote_amount - seller_fee,
            "trade",
            ref,
        )
        self._post(posting, seq, time, seller.account_id, base, Bucket.LOCKED, -quantity, "trade", ref)
        self._post(
            posting, seq, time, buyer.account_id, base, Bucket.AVAILABLE, quantity - buyer_fee, "trade", ref
        )
        if seller_fee:
            self._post(posting, seq, time, FEE_ACCOUNT, quote, Bucket.AVAILABLE, seller_fee, "fee", ref)
        if buyer_fee:
            self._post(posting, seq, time, FEE_ACCOUNT, base, Bucket.AVAILABLE, buyer_fee, "fee", ref)
        buyer.hold_remaining -= quote_amount
        seller.hold_remaining -= quantity
        buyer.fee += buyer_fee
        seller.fee += seller_fee
        for order in (taker, maker):
            order.filled_quantity += quantity
            order.quote_filled += quote_amount
            self._touch_order(order)
        taker_fee, maker_fee = (buyer_fee, seller_fee) if taker_is_buyer else (seller_fee, buyer_fee)
        trade = Trade(
            trade_id=trade_id,
            seq=seq,
            time=time,
            symbol=view.symbol,
            price=price,
            quantity=quantity,
            quote_quantity=quote_amount,
            taker_side=taker.side,
            maker_order_id=maker.order_id,
            taker_order_id=taker.order_id,
            maker_account_id=maker.account_id,
            taker_account_id=taker.account_id,
            maker_fee=maker_fee,
            maker_fee_asset=maker.fee_asset,
            taker_fee=taker_fee,
            taker_fee_asset=taker.fee_asset,
        )
        self._trades.append(trade)
        self._scope.trades.append(trade)
        self._books_changed.add(view.symbol)
        market.last_price = price
        book_side = market.book.asks if taker_is_buyer else market.book.bids
        if maker.shown_remaining is not None:
            maker.shown_remaining -= quantity
        if maker.remaining == 0:
            book_side.remove(maker, quantity)
            maker.transition(OrderStatus.FILLED, seq, time)
            self._release_hold(maker, seq, time)
            self._forget(maker)
        else:
            book_side.reduce(maker, quantity)
            maker.transition(OrderStatus.PARTIALLY_FILLED, seq, time)
            if maker.shown_remaining == 0:
                self._refill(maker, book_side, seq)
        if maker.linked_order_id is not None:
            self._oco_limit_filled(maker, market, seq, time)
        taker_done = taker.quantity is not None and taker.remaining == 0
        taker.transition(OrderStatus.FILLED if taker_done else OrderStatus.PARTIALLY_FILLED, seq, time)
        if taker_done:
            self._release_hold(taker, seq, time)

    def _refill(self, order: Order, side: BookSide, seq: int) -> None:
        """An iceberg whose shown slice is used up shows the next one from its hidden rest,
        queued at the back of its level: a refill loses time priority, as on major exchanges."""
        assert order.iceberg_quantity is not None
        side.remove(order, 0)
        order.shown_remaining = min(order.iceberg_quantity, order.remaining)
        self._requeue(order, seq)
        side.add(order, order.shown_remaining)

    def _rest(self, order: Order, market: Market) -> None:
        side = market.book.bids if order.side is Side.BUY else market.book.asks
        if order.iceberg_quantity is not None and order.shown_remaining is None:
            order.shown_remaining = min(order.iceberg_quantity, order.remaining)  # the first slice
        side.add(order, order.shown)
        self._scope.markets.add(order.symbol)
        self._register(order)

    def _register(self, order: Order) -> None:
        self.orders[order.order_id] = order
        if order.expire_time is not None:
            self.expiries.add((order.expire_time, order.order_id))
        if order.client_order_id is not None:
            self.client_order_ids[(order.account_id, order.client_order_id)] = order.order_id
        self.open_order_count[order.account_id] = self.open_order_count.get(order.account_id, 0) + 1

    def _forget(self, order: Order) -> None:
        del self.orders[order.order_id]
        if order.expire_time is not None:
            self.expiries.discard((order.expire_time, order.order_id))
        if order.client_order_id is not None:
            del self.client_order_ids[(order.account_id, order.client_order_id)]
        count = self.open_order_count[order.account_id] - 1
        if count:
            self.open_order_count[order.account_id] = count
        else:
            del self.open_order_count[order.account_id]

    def _end_resting(self, order: Order, market: Market, status: OrderStatus, seq: int, time: int) -> None:
        """End an open order for good (cancel, self-trade prevention): off the book, or out of
        the untriggered orders."""
        if order.status is OrderStatus.UNTRIGGERED:
            self._unpark(order, market)
        else:
            side = market.book.bids if order.side is Side.BUY else market.book.asks
            side.remove(order, order.shown)
            self._books_changed.add(order.symbol)
        order.transition(status, seq, time)
        self._release_hold(order, seq, time)
        self._forget(order)
        self._touch_order(order)

    # ------------------------------------------------------------------ time in force GTD

    def _check_expiry(self, cmd: PlaceOrder, time: int) -> None:
        if cmd.time_in_force is not TimeInForce.GTD:
            if cmd.expire_time is not None:
                raise Rejected(RejectCode.INVALID_ORDER, "expireTime is only for timeInForce GTD")
            return
        if cmd.order_type not in LIMIT_TYPES:
            raise Rejected(RejectCode.INVALID_ORDER, "GTD is for orders with a limit price")
        if cmd.expire_time is None:
            raise Rejected(RejectCode.INVALID_ORDER, "a GTD order needs an expireTime")
        if not time < cmd.expire_time < MAX_UNITS:
            raise Rejected(RejectCode.INVALID_ORDER, "expireTime must be in the future")

    @staticmethod
    def _check_iceberg(cmd: PlaceOrder, view: MarketView) -> None:
        shown = cmd.iceberg_quantity
        if shown is None:
            return
        if cmd.order_type is not OrderType.LIMIT or cmd.time_in_force not in RESTING_TIFS:
            raise Rejected(RejectCode.INVALID_ORDER, "an iceberg is a limit order that rests: GTC or GTD")
        if not 0 < shown < MAX_UNITS or shown % view.lot_size or shown < view.min_quantity:
            raise Rejected(
                RejectCode.INVALID_QUANTITY,
                "icebergQuantity must be on the lot size and at least the minimum",
            )
        if cmd.quantity is None or shown >= cmd.quantity:
            raise Rejected(RejectCode.INVALID_QUANTITY, "icebergQuantity must be less than the quantity")

    def next_expiry(self) -> int | None:
        """When the earliest open GTD order expires (for the engine's clock), if any."""
        return self.expiries[0][0] if self.expiries else None

    def _expire_due(self, seq: int, time: int) -> Outcome:
        """End every GTD order whose expiry is at or before this command's time, earliest
        first (then by id): off the book or out of the trigger lists, hold released."""
        due = [self.orders[oid] for _, oid in self.expiries.irange(maximum=(time, MAX_UNITS))]
        for order in due:
            self._end_resting(order, self.markets[order.symbol], OrderStatus.EXPIRED, seq, time)
        return Outcome(seq=seq, time=time, orders=tuple(self._view(o) for o in due))

    # ------------------------------------------------------------------ OCO lists

    def _place_oco(self, cmd: PlaceOco, seq: int, time: int) -> Outcome:
        market = self.markets.get(cmd.symbol)
        if market is None:
            raise Rejected(RejectCode.UNKNOWN_SYMBOL, f"unknown symbol {cmd.symbol}")
        view = market.view
        sell = cmd.side is Side.SELL
        if (cmd.price <= cmd.stop_price) if sell else (cmd.price >= cmd.stop_price):
            where = "above" if sell else "below"
            raise Rejected(
                RejectCode.INVALID_PRICE, f"an OCO {cmd.side.value} has its limit price {where} its stop"
            )
        if not sell and cmd.stop_limit_price is None:
            raise Rejected(RejectCode.INVALID_ORDER, "a buy OCO needs a stopLimitPrice")
        stop_type = OrderType.STOP_LIMIT if cmd.stop_limit_price is not None else OrderType.STOP_MARKET
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
            stop_type,
            quantity=cmd.quantity,
            price=cmd.stop_limit_price,
            stop_price=cmd.stop_price,
        )
        if self.open_order_count.get(cmd.account_id, 0) + 2 > MAX_OPEN_ORDERS_PER_ACCOUNT:
            raise Rejected(
                RejectCode.TOO_MANY_OPEN_ORDERS, f"at most {MAX_OPEN_ORDERS_PER_ACCOUNT} open orders"
            )
        # Every check of both orders first, and the funds the list holds once; then both.
        need = max(self._oco_need(limit_leg, market), self._oco_need(stop_leg, market))
        hold_asset = view.base_asset if sell else view.quote_asset
        if need > self._available(cmd.account_id, hold_asset):
            raise Rejected(RejectCode.INSUFFICIENT_FUNDS, f"insufficient {hold_asset} available")
        placed = self._place(limit_leg, seq, time).order
        assert placed is not None
        limit_order = self.orders[placed.order_id]
        stop_order = self._new_order(
            stop_leg,
            market,
            limit_order.self_trade_prevention,
            stop_leg.time_in_force,
            hold_asset,
            seq,
            time,
            status=OrderStatus.UNTRIGGERED,
            stop_price=cmd.stop_price,
        )
        stop_order.linked_order_id, limit_order.linked_order_id = limit_order.order_id, stop_order.order_id
        self._touch_order(stop_order)
        self._park(stop_order, market)
        if need > limit_order.hold_remaining:  # a buy's stop may need more than its limit order
            self._move_hold(limit_order, need - limit_order.hold_remaining, seq, time)
        return self._order_outcome(limit_order, seq, time)

    def _oco_need(self, leg: PlaceOrder, market: Market) -> int:
        """What one order of a list would hold alone, after every check it would pass."""
        if leg.order_type in CONDITIONAL_TYPES:
            stop = leg.stop_price
            assert stop is not None
            if not 0 < stop < MAX_UNITS or stop % market.view.tick_size:
                raise Rejected(RejectCode.INVALID_PRICE, "stopPrice must be positive and on the tick size")
            last = market.last_price
            rises = triggers_on_rise(leg.order_type, leg.side)
            if last is not None and (last >= stop if rises else last <= stop):
                raise Rejected(RejectCode.STOP_WOULD_TRIGGER, "the stop price would trigger immediately")
            if leg.order_type is OrderType.STOP_LIMIT:
                return self._validate_limit(leg, market)
            return self._validate_conditional_market(leg, market)
        return self._validate_limit(leg, market)

    @staticmethod
    def _oco_stop_need(order: Order, market: Market) -> int:
        if order.side is Side.SELL:
            return order.remaining
        assert order.price is not None
        return -(-order.remaining * order.price // market.base_unit)

    def _oco_limit_filled(self, order: Order, market: Market, seq: int, time: int) -> None:
        """The limit order of a list traded: its stop goes, and a buy lets go of what it held
        for the stop beyond its own need."""
        sibling_id = order.linked_order_id
        sibling = self.orders.get(sibling_id) if sibling_id is not None else None
        if sibling is None or sibling.status is not OrderStatus.UNTRIGGERED:
            return
        self._end_resting(sibling, market, OrderStatus.EXPIRED, seq, time)
        if order.is_open and order.side is Side.BUY and order.price is not None:
            needed = -(-order.remaining * order.price // market.base_unit)
            if order.hold_remaining > needed:
                self._release(order, order.hold_remaining - needed, seq, time)

    def _end_linked(self, order: Order, status: OrderStatus, seq: int, time: int) -> None:
        """End the other order of ``order``'s list, if it is still open."""
        sibling_id = order.linked_order_id
        sibling = self.orders.get(sibling_id) if sibling_id is not None else None
        if sibling is not None:
            self._end_resting(sibling, self.markets[sibling.symbol], status, seq, time)

    # ------------------------------------------------------------------ amend

    def _amend(self, cmd: AmendOrder, seq: int, time: int) -> Outcome:
        order = self.orders.get(cmd.order_id)
        if order is None or order.account_id != cmd.account_id:
            raise Rejected(RejectCode.ORDER_NOT_FOUND, f"order {cmd.order_id} is not open")
        if order.status is OrderStatus.UNTRIGGERED or order.price is None:
            raise Rejected(RejectCode.INVALID_ORDER, "only an order resting on the book can be amended")
        if order.iceberg_quantity is not None:
            raise Rejected(
                RejectCode.INVALID_ORDER, "an iceberg order is changed by canceling and placing it again"
            )
        if order.linked_order_id is not None:
            raise Rejected(
                RejectCode.INVALID_ORDER, "an OCO order is changed by canceling the list and placing it again"
            )
        if cmd.quantity is None and cmd.price is None:
            raise Rejected(RejectCode.INVALID_ORDER, "an amend changes the quantity, the price or both")
        market = self.markets[order.symbol]
        view = market.view
        if view.status is not MarketStatus.TRADING:
            raise Rejected(RejectCode.MARKET_HALTED, f"{order.symbol} is not accepting changes")
        assert order.quantity is not None
        quantity = order.quantity if cmd.quantity is None else cmd.quantity
        price = order.price if cmd.price is None else cmd.price
        if cmd.price is not None:
            self._check_price(price, view)
        if cmd.quantity is not None:
            self._check_quantity(quantity, view)
        if quantity <= order.filled_quantity:
            raise Rejected(RejectCode.INVALID_QUANTITY, "the new quantity must exceed what has filled")
        remaining = quantity - order.filled_quantity
        base_unit = market.base_unit
        if remaining * price // base_unit >= MAX_UNITS:
            raise Rejected(RejectCode.INVALID_QUANTITY, "price x quantity is too large")
        keeps_place = price == order.price and quantity <= order.quantity
        if keeps_place:
            return self._reduce(order, market, quantity, seq, time)
        if -(-quantity * price // base_unit) < view.min_notional:
            raise Rejected(
                RejectCode.BELOW_MIN_NOTIONAL, "price x quantity is below the market's minimum notional"
            )
        if order.post_only and self._crosses(order.side, price, market):
            raise Rejected(RejectCode.POST_ONLY_WOULD_TAKE, "a postOnly order would trade immediately")
        needed = -(-remaining * price // base_unit) if order.side is Side.BUY else remaining
        extra = needed - order.hold_remaining
        if extra > self._available(order.account_id, order.hold_asset):
            raise Rejected(RejectCode.INSUFFICIENT_FUNDS, f"insufficient {order.hold_asset} available")
        # Validated: off the book, re-priced and re-sized, then in again as a taker would come.
        side = market.book.bids if order.side is Side.BUY else market.book.asks
        side.remove(order, order.remaining)
        self._forget(order)
        self._books_changed.add(order.symbol)
        order.quantity, order.price = quantity, price
        self._requeue(order, seq)
        order.touch(seq, time)
        if extra > 0:
            self._move_hold(order, extra, seq, time)
        elif extra < 0:
            self._release(order, -extra, seq, time)
        self._run(order, market, 0, False, seq, time)
        self._run_triggers(seq, time)
        return self._order_outcome(order, seq, time)

    def _reduce(self, order: Order, market: Market, quantity: int, seq: int, time: int) -> Outcome:
        """A smaller quantity at the same price: the order keeps its place in the queue."""
        assert order.quantity is not None and order.price is not None
        side = market.book.bids if order.side is Side.BUY else market.book.asks
        side.reduce(order, order.quantity - quantity)
        order.quantity = quantity
        order.touch(seq, time)
        self._touch_order(order)
        self._books_changed.add(order.symbol)
        if order.side is Side.BUY:
            needed = -(-order.remaining * order.price // market.base_unit)
        else:
            needed = order.remaining
        if order.hold_remaining > needed:
            self._release(order, order.hold_remaining - needed, seq, time)
        return self._order_outcome(order, seq, time)

    # ------------------------------------------------------------------ cancel

    def _cancel(self, cmd: CancelOrder, seq: int, time: int) -> Outcome:
        order = self.orders.get(cmd.order_id)
        if order is None or order.account_id != cmd.account_id:
            # Another account's order is reported exactly like a missing one.
            raise Rejected(RejectCode.ORDER_NOT_FOUND, f"order {cmd.order_id} is not open")
        self._end_resting(order, self.markets[order.symbol], OrderStatus.CANCELED, seq, time)
        self._end_linked(order, OrderStatus.CANCELED, seq, time)
        return self._order_outcome(order, seq, time)

    def _cancel_all(self, cmd: CancelAllOrders, seq: int, time: int) -> Outcome:
        market = self.markets.get(cmd.symbol)
        if market is None:
            raise Rejected(RejectCode.UNKNOWN_SYMBOL, f"unknown symbol {cmd.symbol}")
        mine = sorted(
            (o for o in self.orders.values() if o.account_id == cmd.account_id and o.symbol == cmd.symbol),
            key=lambda o: o.order_id,
        )
        for order in mine:
            if order.is_open:  # an OCO order canceled with its other one is done already
                self._end_resting(order, market, OrderStatus.CANCELED, seq, time)
        return Outcome(
            seq=seq,
            time=time,
            orders=tuple(self._view(o) for o in mine),
            balances=self._scope_balances(cmd.account_id),
        )

    # ------------------------------------------------------------------ balances and ledger

    def _available(self, account_id: int, asset: str) -> int:
        balance = self.balances.get((account_id, asset))
        return 0 if balance is None else balance[0]

    def _move_hold(self, order: Order, amount: int, seq: int, time: int) -> None:
        posting = self._new_posting()
        ref = str(order.order_id)
        self._post(
            posting, seq, time, order.account_id, order.hold_asset, Bucket.AVAILABLE, -amount, "hold", ref
        )
        self._post(posting, seq, time, order.account_id, order.hold_asset, Bucket.LOCKED, amount, "hold", ref)
        order.hold_remaining += amount

    def _release_hold(self, order: Order, seq: int, time: int) -> None:
        if order.hold_remaining:
            self._release(order, order.hold_remaining, seq, time)

    def _release(self, order: Order, amount: int, seq: int, time: int) -> None:
        """Move ``amount`` of the order's hold back to available, as one balanced posting."""
        posting = self._new_posting()
        ref = str(order.order_id)
        account, asset = order.account_id, order.hold_asset
        self._post(posting, seq, time, account, asset, Bucket.LOCKED, -amount, "release", ref)
        self._post(posting, seq, time, account, asset, Bucket.AVAILABLE, amount, "release", ref)
        order.hold_remaining -= amount

    def _new_posting(self) -> int:
        posting = self.next_posting_id
        self.next_posting_id += 1
        return posting

    def _post(
        self,
        posting: int,
        seq: int,
        time: int,
        account_id: int,
        asset: str,
        bucket: Bucket,
        delta: int,
        kind: str,
        ref: str,
    ) -> None:
        key = (account_id, asset)
        balance = self.balances.get(key)
        if balance is None:
            balance = self.balances[key] = [0, 0]
        balance[0 if bucket is Bucket.AVAILABLE else 1] += delta
        if balance[0] == 0 and balance[1] == 0:
            del self.balances[key]
        self._scope.balances.add(key)  # joins _dirty_balances in _finish_command
        self._ledger.append(LedgerEntry(posting, seq, time, account_id, asset, bucket, delta, kind, ref))

    def _balance_view(self, key: tuple[int, str]) -> BalanceView:
        available, locked = self.balances.get(key, (0, 0))
        return BalanceView(account_id=key[0], asset=key[1], available=available, locked=locked)

    # ------------------------------------------------------------------ bookkeeping

    def _touch_order(self, order: Order) -> None:
        self._dirty_orders[order.order_id] = order
        self._scope.orders[order.order_id] = order

    def _view(self, order: Order) -> OrderView:
        view = self._dirty_views[order.order_id] = order.view()
        self._scope.viewed.add(order.order_id)
        return view

    def _order_outcome(self, order: Order, seq: int, time: int) -> Outcome:
        others = tuple(self._view(o) for oid, o in self._scope.orders.items() if oid != order.order_id)
        return Outcome(
            seq=seq,
            time=time,
            order=self._view(order),
            orders=others,
            trades=tuple(self._scope.trades),
            balances=self._scope_balances(order.account_id),
        )

    def _scope_balances(self, account_id: int) -> tuple[BalanceView, ...]:
        """The balances of the account that sent the command (other accounts' balances reach
        their owners through take_changes; building views of every touched balance for the
        reply cost ~5 % of the command)."""
        return tuple(self._balance_view(key) for key in sorted(self._scope.balances) if key[0] == account_id)

    def _finish_command(self, scope: _CommandScope) -> None:
        """The always-on checks on what this command touched, and the state hash update."""
        for key in scope.balances:
            if key[0] == EXTERNAL_ACCOUNT:
                continue
            available, locked = self.balances.get(key, (0, 0))
            if available < 0 or locked < 0:
                raise InvariantViolation(f"negative balance {key}: {available}/{locked}")
        if scope.balances:
            self._check_postings_balance()
        for order in scope.orders.values():
            if order.quantity is not None and order.filled_quantity > order.quantity:
                raise InvariantViolation(f"order {order.order_id} overfilled")
            if order.hold_remaining < 0:
                raise InvariantViolation(f"order {order.order_id} spent more than it held")
            if order.is_open and order.order_id not in self.orders:
                raise InvariantViolation(f"open order {order.order_id} is not on the book")
        for order_id in scope.orders.keys() - scope.viewed:
            self._dirty_views.pop(order_id, None)  # changed without a fresh view: never reuse a stale one
        self._unhashed_orders.update(scope.orders)
        self._unhashed_balances |= scope.balances
        self._dirty_balances |= scope.balances
        # Only an order coming to rest can cross a book: check the markets where one did.
        for symbol in scope.markets:
            book = self.markets[symbol].book
            bid, ask = book.bids.best_price(), book.asks.best_price()
            if bid is not None and ask is not None and bid >= ask:
                raise InvariantViolation(f"{symbol} book crossed: {bid} >= {ask}")

    def _check_postings_balance(self) -> None:
        """Each posting of this command sums to zero per asset (double entry)."""
        sums: dict[tuple[int, str], int] = {}
        for entry in reversed(self._ledger):
            if entry.seq != self.last_seq:
                break
            key = (entry.posting_id, entry.asset)
            sums[key] = sums.get(key, 0) + entry.delta
        for key, total in sums.items():
            if total:
                raise InvariantViolation(f"posting {key[0]} does not balance in {key[1]}: {total}")

    def _counters(self) -> tuple[int, ...]:
        return (self.last_seq, self.last_time, self.next_order_id, self.next_trade_id, self.next_posting_id)

    def _reset_changes(self) -> None:
        self._dirty_assets = set()
        self._dirty_markets = set()
        self._dirty_orders = {}
        self._dirty_views = {}
        self._dirty_balances = set()
        self._books_changed = set()
        self._trades = []
        self._ledger = []
