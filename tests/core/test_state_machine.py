"""Random command sequences against the core and an independent reference model.

Hypothesis drives two markets (BTC-USDT with USDT at scale 6, ETH-BTC with a minimum
notional) and three accounts with small price and quantity grids so orders cross often:
credits, limit orders GTC/IOC/FOK with post-only and every self-trade prevention mode,
market orders by quantity and by quote quantity, stop and take-profit orders (market and limit,
stops a few ticks beyond the last price so they trigger and cascade, or on the wrong side, off
the tick, missing or mis-sized), trailing stops (both sides, a distance in ticks or in parts
per million, with or without an activation price near the last price, or malformed), time in
force GTD (expiring a few commands later, or refused: in the past, missing, without GTD) and
the clock's ExpireOrders, iceberg limit orders (and refused ones: not less than the order, off
the lot, zero, IOC/FOK), OCO lists (both sides, stop-limit or stop-market, prices a few ticks
around the last price: some valid, some refused, some triggering later), amends of resting
orders (smaller, larger, re-priced across the book, refused), cancels of open, foreign and
made-up ids, cancel-all, off-tick and off-lot orders, market halts/resumes, fee and default-STP changes.

The reference model (``model.py``) predicts everything exactly — reject codes, statuses,
fills, books in queue order, holds and every balance — for all of those commands. On top of
that, after every step: ``check_invariants``, conservation per asset against the credits,
no negative balance, locked == open orders' holds, book not crossed, filled + remaining =
original, prices and quantities on tick and lot, fills at the maker's price within the
taker's limit and never between one account's orders, each posting and each trade's legs
plus fees summing to zero in the ledger, a rejected command changing nothing but the clock
(snapshot compared byte for byte), and ``restore(snapshot())`` giving the same state hash.
At teardown the journal is encoded, decoded and replayed into a fresh core: same state.

Known core bugs (``model.KNOWN_BUGS``, each pinned by a strict xfail unit test) are not hidden
but named. Today two (test_oco_bugs): self-trade prevention ending an OCO limit order leaves its
stop open, and an OCO stop expired earlier in its round of triggers still triggers (ValueError);
``run`` applies each command to a copy of the model first and skips it when the model notes
it would meet one of them. Two earlier ones are fixed and kept as names with their
workarounds: while listed, GTC limit orders that would stop on their own account's order under
expire_taker/expire_both are sent as IOC, and a quote-sized market order spending its budget
exactly on the last level is predicted expired, as the core did.
Drop a name from ``KNOWN_BUGS`` once the core is fixed and the model checks the fix.

``HYPOTHESIS_PROFILE=ci`` runs fewer, shorter examples; ``CAMBIST_TEST_MACHINE_EXAMPLES=N`` more.
"""

from __future__ import annotations

import copy
import os

import msgspec
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cambist.core.checks import check_invariants
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
    decode_command,
    encode_command,
)
from cambist.core.events import Changes, Outcome
from cambist.core.exchange import ExchangeCore
from cambist.core.types import (
    EXTERNAL_ACCOUNT,
    FEE_ACCOUNT,
    MarketStatus,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

from . import model as ref
from .support import fingerprint

LIGHT = os.environ.get("HYPOTHESIS_PROFILE") == "ci"
ACCOUNTS = (1, 2, 3)
STP = SelfTradePrevention


class Spec(msgspec.Struct, frozen=True):
    symbol: str
    base: str
    quote: str
    tick: int
    lot: int
    min_notional: int
    price0: int  # the grid: price0 + k * tick for k in 0..7


MARKETS = (
    # USDT scale 6: tick 0.01 USDT, lot 0.0001 BTC, prices 100.00..100.07 (one lot ~ 0.0100 USDT).
    Spec("BTC-USDT", "BTC", "USDT", 10**4, 10**4, 0, 10**8),
    # Both scale 8: tick 0.0001 BTC, lot 0.0001 ETH, prices 0.05..0.0507; one lot is below the
    # minimum notional of 0.00001 BTC, two are not.
    Spec("ETH-BTC", "ETH", "BTC", 10**4, 10**4, 1000, 5 * 10**6),
)
SCALES = {"BTC": 8, "USDT": 6, "ETH": 8}
FEES = (0, 1000, 1234, 2500, 3333)

accounts = st.sampled_from(ACCOUNTS)
markets = st.sampled_from(MARKETS)
sides = st.sampled_from([Side.BUY, Side.SELL])
stps = st.sampled_from([None, None, None, STP.EXPIRE_MAKER, STP.EXPIRE_TAKER, STP.EXPIRE_BOTH])


class CoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.core = ExchangeCore()
        self.model = ref.Model()
        self.journal: list[Command] = []
        self.prices: dict[int, int | None] = {}  # every order's limit price, by id
        self.markets: dict[str, UpsertMarket] = {}

    # ---------------------------------------------------------------- driving

    def run(self, command: Command) -> Outcome | None:
        avoid = {ref.KNOWN_BUG_NOTES[bug] for bug in ref.KNOWN_BUGS if bug in ref.KNOWN_BUG_NOTES}
        if avoid and any(o.linked for o in self.model.open.values()):
            trial = copy.deepcopy(self.model)  # the model says whether the command meets a known bug
            trial.apply(command, (len(self.journal) + 1) * 1000)
            for note in sorted(avoid & trial.notes):
                event(f"skipped (known bug): {note}")
                return None
        before = fingerprint(self.core)
        seq = len(self.journal) + 1
        expected = self.model.apply(command, seq * 1000)
        self.journal.append(command)
        outcome = self.core.apply(command, seq, seq * 1000)
        changes = self.core.take_changes()
        placed = {outcome.order.order_id} if isinstance(command, PlaceOrder) and outcome.order else set()
        assert outcome.reject == expected.reject, (command, outcome.reject, outcome.message, expected.reject)
        event(
            f"{type(command).__name__}: {outcome.reject or (outcome.order.status if outcome.order else 'ok')}"
        )
        if outcome.trades:
            event(f"{type(command).__name__} traded")
        acted = OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.EXPIRED
        if any(v.stop_price is not None and v.status in acted for v in changes.orders):
            event("a conditional order triggered")
        trailing = [v for v in changes.orders if v.order_type is OrderType.TRAILING_STOP]
        if any(v.status in acted for v in trailing):
            event("a trailing stop triggered")
            if any(
                v.stop_price is not None and v.status in acted and v.order_type is not OrderType.TRAILING_STOP
                for v in changes.orders
            ):
                event("a trailing stop and a stop or take-profit triggered by one command")
        if any(v.status is OrderStatus.UNTRIGGERED and v.order_id not in placed for v in trailing):
            event("a trailing stop moved")
        for note in sorted(self.model.notes):
            event(note)
        if isinstance(command, ExpireOrders) and outcome.orders:
            event("GTD orders expired")
        if any(v.time_in_force is TimeInForce.GTD and v.status in acted[:3] for v in changes.orders):
            event("a GTD order rested or traded")
        if outcome.reject is not None:
            assert fingerprint(self.core) == before, "a rejected command changed the state"
            assert (changes.orders, changes.trades, changes.ledger, changes.balances) == ([], [], [], [])
            return outcome
        self.check_outcome(outcome, expected)
        self.check_ledger(changes)
        return outcome

    def must(self, command: Command) -> None:
        outcome = self.run(command)
        assert outcome is not None and outcome.reject is None, command

    def check_outcome(self, outcome: Outcome, expected: ref.Result) -> None:
        views = ([outcome.order] if outcome.order else []) + list(outcome.orders)
        for view in views:
            self.prices[view.order_id] = view.price  # the latest: an amend can change it
            if view.quantity is not None:
                assert 0 <= view.filled_quantity <= view.quantity
        if expected.order is not None:
            order, want = outcome.order, expected.order
            assert order is not None
            got = (order.order_id, order.status, order.filled_quantity, order.quote_filled, order.fee)
            assert got == (want.order_id, want.status, want.filled, want.quote_filled, want.fee)
            assert order.hold_remaining == want.hold
            assert order.stop_price == want.stop
            assert order.expire_time == want.expire_time
        others = {o.order_id: o.status for o in outcome.orders}
        assert others == expected.touched
        if not outcome.trades:  # ExpireOrders and cancel-all report their orders in id order
            assert [o.order_id for o in outcome.orders] == list(expected.touched)
        trades = [
            ref.MTrade(
                t.price,
                t.quantity,
                t.quote_quantity,
                t.maker_order_id,
                t.taker_order_id,
                t.maker_account_id,
                t.taker_account_id,
                t.maker_fee,
                t.taker_fee,
            )
            for t in outcome.trades
        ]
        assert trades == expected.trades
        for trade in outcome.trades:
            spec = next(m for m in MARKETS if m.symbol == trade.symbol)
            assert trade.maker_account_id != trade.taker_account_id, "self-trade"
            assert trade.price % spec.tick == 0 and trade.quantity % spec.lot == 0 and trade.quantity > 0
            assert trade.price == self.prices[trade.maker_order_id], "fill away from the maker's price"
            limit = self.prices[trade.taker_order_id]
            if limit is not None:
                assert trade.price <= limit if trade.taker_side is Side.BUY else trade.price >= limit

    def check_ledger(self, changes: Changes) -> None:
        postings: dict[tuple[int, str], int] = {}
        legs: dict[tuple[str, str], int] = {}
        for entry in changes.ledger:
            key = (entry.posting_id, entry.asset)
            postings[key] = postings.get(key, 0) + entry.delta
            if entry.kind in ("trade", "fee"):
                legs[(entry.ref, entry.asset)] = legs.get((entry.ref, entry.asset), 0) + entry.delta
        assert all(total == 0 for total in postings.values()), postings
        assert all(total == 0 for total in legs.values()), legs
        for trade in changes.trades:
            ref_id = str(trade.trade_id)
            fees = {(e.asset, e.delta) for e in changes.ledger if e.ref == ref_id and e.kind == "fee"}
            want = {(trade.maker_fee_asset, trade.maker_fee), (trade.taker_fee_asset, trade.taker_fee)}
            assert fees == {f for f in want if f[1]}
            fee_account = {e.account_id for e in changes.ledger if e.ref == ref_id and e.kind == "fee"}
            assert fee_account <= {FEE_ACCOUNT}

    def upsert(self, spec: Spec, **changes: object) -> Outcome | None:
        command = msgspec.structs.replace(self.markets[spec.symbol], **changes)
        outcome = self.run(command)
        if outcome is not None and outcome.reject is None:
            self.markets[spec.symbol] = command
        return outcome

    # ---------------------------------------------------------------- rules

    @initialize()
    def setup(self) -> None:
        for asset, scale in SCALES.items():
            self.must(AddAsset(asset, scale))
        for spec in MARKETS:
            command = UpsertMarket(
                symbol=spec.symbol,
                base_asset=spec.base,
                quote_asset=spec.quote,
                tick_size=spec.tick,
                lot_size=spec.lot,
                min_quantity=spec.lot,
                min_notional=spec.min_notional,
                maker_fee_ppm=1000,
                taker_fee_ppm=2000,
            )
            self.must(command)
            self.markets[spec.symbol] = command
        for account in ACCOUNTS:  # enough for a few orders each; credits top up during the run
            for asset, amount in (("USDT", 5 * 10**5), ("BTC", 2 * 10**5), ("ETH", 3 * 10**5)):
                self.must(Credit(f"seed-{account}-{asset}", account, asset, amount, "seed"))

    @precondition(lambda self: len(self.journal) % 3 == 0)  # credits top up, they should not dominate
    @rule(
        account=accounts,
        asset=st.sampled_from(sorted(SCALES)),
        lots=st.integers(min_value=1, max_value=400),
        odd=st.integers(min_value=0, max_value=9999),
    )
    def credit(self, account: int, asset: str, lots: int, odd: int) -> None:
        amount = lots * 10**4 + odd  # not always a whole number of lots
        self.run(Credit(f"credit-{len(self.journal)}", account, asset, amount, "test"))

    @rule(
        spec=markets,
        account=accounts,
        side=sides,
        step=st.integers(min_value=0, max_value=7),
        lots=st.integers(min_value=1, max_value=20),
        tif=st.sampled_from([TimeInForce.GTC] * 4 + [TimeInForce.IOC, TimeInForce.FOK]),
        post_only=st.sampled_from([False] * 5 + [True]),
        stp=stps,
        client_order_id=st.sampled_from([None] * 4 + ["a", "b"]),
        defect=st.sampled_from([None] * 12 + ["tick", "lot"]),
        expiry=st.sampled_from([None] * 6 + list(range(1, 11)) + ["past", "now", "missing", "without GTD"]),
        iceberg=st.sampled_from([None] * 6 + [1, 1, 2, 3, 5, "zero", "off lot"]),
    )
    def place_limit(
        self,
        spec: Spec,
        account: int,
        side: Side,
        step: int,
        lots: int,
        tif: TimeInForce,
        post_only: bool,
        stp: SelfTradePrevention | None,
        client_order_id: str | None,
        defect: str | None,
        expiry: int | str | None = None,
        iceberg: int | str | None = None,
        price: int | None = None,
    ) -> None:
        """A limit order; ``expiry``: GTD expiring that many commands from now, or refused;
        ``iceberg``: showing slices of that many lots (refused when not less than the order, or
        not on the lot, or on an IOC/FOK order)."""
        if price is None:  # the simplest step (0) is the most aggressive price: shrinking keeps trades
            step = 7 - step if side is Side.BUY else step
            price = spec.price0 + step * spec.tick + (1 if defect == "tick" else 0)
        quantity = lots * spec.lot + (1 if defect == "lot" else 0)
        iceberg_quantity = None
        if isinstance(iceberg, int):
            iceberg_quantity = iceberg * spec.lot
        elif iceberg is not None:
            iceberg_quantity = 0 if iceberg == "zero" else spec.lot + 1
        command = PlaceOrder(
            account,
            spec.symbol,
            side,
            OrderType.LIMIT,
            quantity=quantity,
            price=price,
            post_only=post_only,
            client_order_id=client_order_id,
            self_trade_prevention=stp,
            iceberg_quantity=iceberg_quantity,
            **self.gtd(tif, expiry),  # type: ignore[arg-type]
        )
        if (
            ref.STP_GTC_TAKER_NOT_EXPIRED in ref.KNOWN_BUGS
            and tif is TimeInForce.GTC
            and not post_only
            and defect is None
            and spec.symbol in self.model.markets
            and self.model.would_stop_on_self_trade(command)
        ):
            command = msgspec.structs.replace(command, time_in_force=TimeInForce.IOC)
        self.run(command)

    def gtd(self, tif: TimeInForce, expiry: int | str | None) -> dict[str, object]:
        """Time in force fields: GTD expiring ``expiry`` commands from now (time = seq * 1000), or
        a refused variant (in the past, exactly now, no expireTime, expireTime without GTD)."""
        now = (len(self.journal) + 1) * 1000  # the time of the command about to run
        if expiry is None:
            return {"time_in_force": tif}
        if isinstance(expiry, int):
            return {"time_in_force": TimeInForce.GTD, "expire_time": now + expiry * 1000}
        if expiry == "missing":
            return {"time_in_force": TimeInForce.GTD}
        if expiry == "without GTD":
            return {"time_in_force": tif, "expire_time": now + 5000}
        return {"time_in_force": TimeInForce.GTD, "expire_time": now - 1 if expiry == "past" else now}

    def on_books(self) -> list[int]:
        """Ids of the orders resting on a book (open orders that are not waiting to trigger)."""
        return sorted(i for i, o in self.model.open.items() if o.status is not OrderStatus.UNTRIGGERED)

    @precondition(lambda self: bool(self.on_books()))
    @rule(
        data=st.data(),
        account=accounts,
        through=st.integers(min_value=0, max_value=2),
        lots=st.integers(min_value=1, max_value=30),
        tif=st.sampled_from([TimeInForce.GTC] * 3 + [TimeInForce.IOC, TimeInForce.FOK]),
        stp=stps,
    )
    def take_liquidity(
        self,
        data: st.DataObject,
        account: int,
        through: int,
        lots: int,
        tif: TimeInForce,
        stp: SelfTradePrevention | None,
    ) -> None:
        """A limit order priced at (or a tick or two through) a resting order, so it trades."""
        maker = self.model.open[data.draw(st.sampled_from(self.on_books()))]
        spec = next(m for m in MARKETS if m.symbol == maker.symbol)
        side = Side.SELL if maker.side is Side.BUY else Side.BUY
        assert maker.price is not None
        price = maker.price + (through if side is Side.BUY else -through) * spec.tick
        self.place_limit(spec, account, side, 0, lots, tif, False, stp, None, None, price=price)

    @rule(
        spec=markets,
        account=accounts,
        side=sides,
        by_quote=st.booleans(),
        lots=st.integers(min_value=1, max_value=30),
        tif=st.sampled_from([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]),
        stp=stps,
        face_the_book=st.sampled_from([True, True, True, False]),
        step=st.integers(min_value=0, max_value=7),
    )
    def place_market(
        self,
        spec: Spec,
        account: int,
        side: Side,
        by_quote: bool,
        lots: int,
        tif: TimeInForce,
        stp: SelfTradePrevention | None,
        face_the_book: bool,
        step: int,
    ) -> None:
        """A market order, usually on the side of the book that has orders to trade with (or a
        resting limit order when that market's book is empty)."""
        resting = {
            self.model.open[i].side for i in self.on_books() if self.model.open[i].symbol == spec.symbol
        }
        if face_the_book and not resting:  # nothing to trade with: provide some liquidity instead
            self.place_limit(spec, account, side, 3, lots, TimeInForce.GTC, False, stp, None, None)
            return
        if face_the_book and len(resting) == 1:
            side = Side.SELL if Side.BUY in resting else Side.BUY
        if by_quote:  # what ``lots`` lots cost at some grid price, plus a little (or nothing) extra
            price = spec.price0 + step * spec.tick
            extra = (0, 1, spec.tick // 2)[lots % 3]
            size = {"quote_quantity": lots * spec.lot * price // 10 ** SCALES[spec.base] + extra}
            tif = TimeInForce.IOC if tif is TimeInForce.FOK else tif
        else:
            size = {"quantity": lots * spec.lot}
        self.run(
            PlaceOrder(
                account,
                spec.symbol,
                side,
                OrderType.MARKET,
                time_in_force=tif,
                self_trade_prevention=stp,
                **size,
            )
        )

    @rule(
        spec=markets,
        account=accounts,
        side=sides,
        kind=st.sampled_from(
            [
                OrderType.STOP_LIMIT,
                OrderType.STOP_MARKET,
                OrderType.TAKE_PROFIT_LIMIT,
                OrderType.TAKE_PROFIT_MARKET,
            ]
        ),
        distance=st.integers(min_value=1, max_value=4),
        limit_step=st.integers(min_value=0, max_value=7),
        lots=st.integers(min_value=1, max_value=20),
        tif=st.sampled_from([TimeInForce.GTC] * 3 + [TimeInForce.IOC, TimeInForce.FOK]),
        stp=stps,
        defect=st.sampled_from([None] * 10 + ["wrong side", "stop off tick", "no stop", "other size"]),
        expiry=st.sampled_from([None] * 8 + [1, 3, 6, 10, "past"]),
    )
    def place_conditional(
        self,
        spec: Spec,
        account: int,
        side: Side,
        kind: OrderType,
        distance: int,
        limit_step: int,
        lots: int,
        tif: TimeInForce,
        stp: SelfTradePrevention | None,
        defect: str | None,
        expiry: int | str | None,
    ) -> None:
        """A stop or take-profit whose stop is ``distance`` ticks beyond the last price, in the
        direction it waits for (or on the wrong side, off the tick, missing, mis-sized); some
        are GTD (a market kind with GTD is refused: GTD needs a limit price)."""
        market = self.model.markets.get(spec.symbol)
        last = (
            market.last_price
            if market is not None and market.last_price is not None
            else spec.price0 + 3 * spec.tick
        )
        up = ref.rises(kind, side) != (defect == "wrong side")
        stop: int | None = last + (distance if up else -distance) * spec.tick
        if defect == "stop off tick":
            stop = (stop or 0) + 1
        elif defect == "no stop":
            stop = None
        size: dict[str, int | None] = {}
        if kind in (OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
            size = {"quantity": lots * spec.lot, "price": spec.price0 + limit_step * spec.tick}
        elif (side is Side.SELL) != (defect == "other size"):
            size = {"quantity": lots * spec.lot}
        else:
            size = {"quote_quantity": lots * spec.lot * (stop or spec.price0) // 10 ** SCALES[spec.base] + 1}
        limit_kind = kind in (OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
        self.run(
            PlaceOrder(
                account,
                spec.symbol,
                side,
                kind,
                self_trade_prevention=stp,
                stop_price=stop,
                **size,  # type: ignore[arg-type]
                **self.gtd(tif if limit_kind else TimeInForce.GTC, expiry),  # type: ignore[arg-type]
            )
        )

    @rule(
        spec=markets,
        account=accounts,
        side=sides,
        # Near distances trigger within the grid; a percentage is 0.5 tick per 0.1 % on ETH-BTC
        # but 10 ticks on BTC-USDT (it moves there, and rarely triggers). 5_929, 9_901, 13_889
        # and 23_857 ppm of some ETH-BTC prices are a hair above a whole tick: rounding the
        # distance up (not down) then moves the stop a whole tick.
        distance=st.sampled_from(
            [("ticks", 1)] * 3
            + [("ticks", 2)] * 2
            + [("ticks", 3), ("ticks", 4)]
            + [("ppm", p) for p in (1_000, 2_000, 5_000, 5_929, 9_901, 13_889, 23_857, 200_000)]
        ),
        activation=st.sampled_from([None, None, -3, -2, -1, 0, 1, 2, 3]),
        lots=st.integers(min_value=1, max_value=20),
        tif=st.sampled_from([TimeInForce.GTC] * 4 + [TimeInForce.IOC]),
        stp=stps,
        defect=st.sampled_from(
            [None] * 16
            + [
                "both distances",
                "no distance",
                "offset off tick",
                "zero offset",
                "ppm too small",
                "ppm too large",
                "activation off tick",
                "stop price",
                "post only",
                "limit price",
                "other size",
                "FOK",
                "GTD",
            ]
        ),
    )
    def place_trailing(
        self,
        spec: Spec,
        account: int,
        side: Side,
        distance: tuple[str, int],
        activation: int | None,
        lots: int,
        tif: TimeInForce,
        stp: SelfTradePrevention | None,
        defect: str | None,
    ) -> None:
        """A trailing stop a few ticks (or a percentage) from the price, starting now or at an
        activation price a few ticks from the last price (or malformed)."""
        market = self.model.markets.get(spec.symbol)
        last = (
            market.last_price
            if market is not None and market.last_price is not None
            else spec.price0 + 3 * spec.tick
        )
        fields: dict[str, object] = {"time_in_force": tif, "self_trade_prevention": stp}
        unit, amount = distance
        if unit == "ticks":
            fields["trailing_offset"] = amount * spec.tick
        else:
            fields["trailing_ppm"] = amount
        if activation is not None:
            fields["activation_price"] = last + activation * spec.tick
        if (side is Side.SELL) != (defect == "other size"):
            fields["quantity"] = lots * spec.lot
        else:
            fields["quote_quantity"] = lots * spec.lot * last // 10 ** SCALES[spec.base] + 1
        if defect == "both distances":
            fields["trailing_offset"], fields["trailing_ppm"] = spec.tick, 5_000
        elif defect == "no distance":
            fields["trailing_offset"] = fields["trailing_ppm"] = None
        elif defect == "offset off tick":
            fields["trailing_offset"], fields["trailing_ppm"] = spec.tick + 1, None
        elif defect == "zero offset":
            fields["trailing_offset"], fields["trailing_ppm"] = 0, None
        elif defect in ("ppm too small", "ppm too large"):
            fields["trailing_offset"] = None
            fields["trailing_ppm"] = 999 if defect == "ppm too small" else 200_001
        elif defect == "activation off tick":
            fields["activation_price"] = last + 1
        elif defect == "stop price":
            fields["stop_price"] = last
        elif defect == "post only":
            fields["post_only"] = True
        elif defect == "limit price":
            fields["price"] = last
        elif defect == "FOK":
            fields["time_in_force"] = TimeInForce.FOK
        elif defect == "GTD":
            fields.update(self.gtd(tif, 5))
        self.run(
            PlaceOrder(account, spec.symbol, side, OrderType.TRAILING_STOP, **fields)  # type: ignore[arg-type]
        )

    @rule(
        spec=markets,
        account=accounts,
        side=sides,
        lots=st.integers(min_value=1, max_value=20),
        limit=st.integers(min_value=-1, max_value=4),
        stop=st.integers(min_value=-1, max_value=4),
        stop_limit=st.sampled_from([None, None, 0, 1, 2, -1]),
        client_order_id=st.sampled_from([None] * 4 + ["a", "b"]),
    )
    def place_oco(
        self,
        spec: Spec,
        account: int,
        side: Side,
        lots: int,
        limit: int,
        stop: int,
        stop_limit: int | None,
        client_order_id: str | None,
    ) -> None:
        """An OCO list: the limit ``limit`` ticks from the last price on the far side (a sell's
        above), the stop ``stop`` ticks on the near side, and the stop-limit ``stop_limit`` ticks
        beyond the stop (or a stop-market, which a buy may not have); small and negative steps
        make some of them refused (inverted, crossing, already triggered)."""
        market = self.model.markets.get(spec.symbol)
        last = (
            market.last_price
            if market is not None and market.last_price is not None
            else spec.price0 + 3 * spec.tick
        )
        away = 1 if side is Side.SELL else -1  # where the limit price lies; the stop the other way
        stop_price = last - away * stop * spec.tick
        self.run(
            PlaceOco(
                account,
                spec.symbol,
                side,
                lots * spec.lot,
                last + away * limit * spec.tick,
                stop_price,
                None if stop_limit is None else stop_price - away * stop_limit * spec.tick,
                client_order_id,
            )
        )

    @rule()
    def expire(self) -> None:
        """The engine's clock: end the GTD orders whose time has come (often none)."""
        self.run(ExpireOrders())

    @precondition(lambda self: bool(self.on_books()))
    @rule(
        data=st.data(),
        change=st.sampled_from(["smaller", "larger", "price", "both", "nothing", "below filled", "off lot"]),
        foreign=st.sampled_from([False] * 6 + [True]),
        lots=st.integers(min_value=1, max_value=20),
        step=st.integers(min_value=0, max_value=7),
    )
    def amend(self, data: st.DataObject, change: str, foreign: bool, lots: int, step: int) -> None:
        """Amend a resting order: smaller (keeps its place), larger, re-priced (may cross), or
        wrongly (nothing to change, at or below what filled, off the lot, someone else's)."""
        order = self.model.open[data.draw(st.sampled_from(self.on_books()), label="order_id")]
        spec = next(m for m in MARKETS if m.symbol == order.symbol)
        account = order.account
        if foreign:
            account = data.draw(st.sampled_from([a for a in ACCOUNTS if a != order.account]), label="account")
        assert order.quantity is not None
        quantity: int | None = None
        price: int | None = None
        if change == "smaller":
            quantity = max(order.filled + spec.lot, order.quantity - lots * spec.lot)
        elif change in ("larger", "both"):
            quantity = order.quantity + lots * spec.lot
        elif change == "below filled":
            quantity = order.filled
        elif change == "off lot":
            quantity = order.quantity + 1
        if change in ("price", "both"):
            price = spec.price0 + step * spec.tick
        self.run(AmendOrder(account, order.order_id, quantity=quantity, price=price))

    @precondition(lambda self: bool(self.model.open) or len(self.journal) % 4 == 0)
    @rule(
        data=st.data(),
        what=st.sampled_from(["open", "open", "open", "foreign", "made-up", "all"]),
        account=accounts,
        symbol=st.sampled_from([m.symbol for m in MARKETS] + ["XRP-USDT"]),
    )
    def cancel(self, data: st.DataObject, what: str, account: int, symbol: str) -> None:
        """Cancel an open order by its owner or by another account, a made-up id, or cancel-all."""
        if what == "all":
            self.run(CancelAllOrders(account, symbol))
            return
        if what == "made-up" or not self.model.open:
            self.run(CancelOrder(account, data.draw(st.integers(min_value=0, max_value=200), label="id")))
            return
        order_id = data.draw(st.sampled_from(sorted(self.model.open)), label="order_id")
        owner = self.model.open[order_id].account
        if what == "foreign":
            account = data.draw(st.sampled_from([a for a in ACCOUNTS if a != owner]), label="account")
        else:
            account = owner
        self.run(CancelOrder(account, order_id))

    @precondition(lambda self: len(self.journal) % 4 == 0)  # keeps market changes to a few per run
    @rule(
        spec=markets,
        change=st.sampled_from(["halt", "fees", "fees", "stp"]),
        maker=st.sampled_from(FEES),
        taker=st.sampled_from((*FEES, 200_000)),  # 20 % is refused
        stp=st.sampled_from(list(STP)),
    )
    def change_market(
        self, spec: Spec, change: str, maker: int, taker: int, stp: SelfTradePrevention
    ) -> None:
        """Halt (a halted market resumes at the next change), change fees or the default STP."""
        halted = [s for s in MARKETS if self.markets[s.symbol].status is MarketStatus.HALTED]
        if halted:
            self.upsert(halted[0], status=MarketStatus.TRADING)
        elif change == "halt":
            self.upsert(spec, status=MarketStatus.HALTED)
        elif change == "fees":
            self.upsert(spec, maker_fee_ppm=maker, taker_fee_ppm=taker)
        else:
            self.upsert(spec, self_trade_prevention=stp)

    # ---------------------------------------------------------------- invariants

    @invariant()
    def full_scan(self) -> None:
        check_invariants(self.core)

    @invariant()
    def matches_the_model(self) -> None:
        assert {k: tuple(v) for k, v in self.core.balances.items()} == self.model.nonzero_balances()
        for symbol, market in self.core.markets.items():
            mine = self.model.markets[symbol]
            for side, queue in ((market.book.bids, mine.bids()), (market.book.asks, mine.asks())):
                got = [(o.order_id, o.shown) for lvl in side.iter_levels() for o in lvl.orders.values()]
                assert got == [(o.order_id, o.shown) for o in queue], symbol
        assert set(self.core.orders) == set(self.model.open)
        for order_id, order in self.core.orders.items():
            want = self.model.open[order_id]
            assert (order.status, order.filled_quantity, order.hold_remaining) == (
                want.status,
                want.filled,
                want.hold,
            )
            assert (order.stop_price, order.expire_time) == (want.stop, want.expire_time)
            if order.order_type is OrderType.TRAILING_STOP:
                assert (order.activation_price, order.trail_extreme) == (want.activation, want.extreme)
            assert (order.iceberg_quantity, order.shown_remaining) == (want.iceberg, want.shown_left)
            assert order.linked_order_id == want.linked
        assert self.core.next_order_id == self.model.next_order_id

    @invariant()
    def money_is_conserved_and_held_exactly(self) -> None:
        totals: dict[str, int] = {}
        reserved: dict[tuple[int, str], int] = {}
        for order in self.core.orders.values():
            key = (order.account_id, order.hold_asset)
            reserved[key] = reserved.get(key, 0) + order.hold_remaining
        for (account, asset), (available, locked) in self.core.balances.items():
            if account == EXTERNAL_ACCOUNT:
                assert locked == 0 and available == -self.model.credited.get(asset, 0)
                continue
            assert available >= 0 and locked >= 0, (account, asset, available, locked)
            assert locked == reserved.get((account, asset), 0)
            totals[asset] = totals.get(asset, 0) + available + locked
        assert totals == {a: n for a, n in self.model.credited.items() if n}

    @invariant()
    def books_are_sound(self) -> None:
        for spec in MARKETS:
            market = self.core.markets.get(spec.symbol)
            if market is None:
                continue
            bid, ask = market.book.bids.best_price(), market.book.asks.best_price()
            assert bid is None or ask is None or bid < ask
            for order in self.core.orders.values():
                if order.symbol != spec.symbol:
                    continue
                if order.status is OrderStatus.UNTRIGGERED:
                    # Waiting off the book, untouched, holding what it will need (a trailing stop
                    # has no stop until it starts trailing).
                    trailing = order.order_type is OrderType.TRAILING_STOP
                    assert (trailing and order.trail_extreme is None) or order.stop_price is not None
                    assert order.stop_price is None or order.stop_price % spec.tick == 0
                    assert order.filled_quantity == 0
                    # The waiting stop of an OCO list holds nothing: its limit order holds.
                    assert order.hold_remaining > 0 or order.linked_order_id is not None
                    continue
                assert order.price is not None and order.price % spec.tick == 0
                assert order.quantity is not None and order.quantity % spec.lot == 0
                assert order.filled_quantity + order.remaining == order.quantity
                assert order.remaining > 0

    @invariant()
    def restore_gives_the_same_state(self) -> None:
        snapshot = self.core.snapshot()
        restored = ExchangeCore.restore(snapshot)
        assert restored.state_hash() == self.core.state_hash() == restored.compute_state_hash()
        assert restored.snapshot() == snapshot

    def teardown(self) -> None:
        if not self.journal:
            return
        fresh = ExchangeCore()
        for seq, command in enumerate(self.journal, start=1):
            fresh.apply(decode_command(encode_command(command)), seq, seq * 1000)
        assert fresh.state_hash() == self.core.state_hash(), "replay of the journal diverged"
        assert fresh.snapshot() == self.core.snapshot()


CoreMachine.TestCase.settings = settings(
    max_examples=40 if LIGHT else int(os.environ.get("CAMBIST_TEST_MACHINE_EXAMPLES", "150")),
    stateful_step_count=30 if LIGHT else 60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCoreMachine = CoreMachine.TestCase


def test_the_model_knows_its_bugs_are_bugs() -> None:
    """Every known bug listed in the model is a real name (a typo would silently disable it)."""
    assert {
        ref.QUOTE_EXACT_EXPIRES,
        ref.STP_GTC_TAKER_NOT_EXPIRED,
        ref.OCO_STP_ORPHAN_STOP,
        ref.OCO_STOP_ENDED_WHILE_DUE,
    } >= ref.KNOWN_BUGS
