"""Demo liquidity: an in-process market maker and taker for ``cambist serve --demo``.

It trades through exactly the command path users use (``execute(command) -> Outcome``), so
the demo never bypasses risk checks, the journal or market data: what it does is what a
bot on the public API could do. Two accounts take part: the *maker* keeps a ladder of
post-only limit orders on both sides of every market it can price, and the *taker* sends
small market and IOC orders that cross, so trades print and candles move. They must be
different accounts, or self-trade prevention would cancel the maker's orders instead.

Rules the loop keeps, and why:

- New orders are placed before stale ones are canceled, and the side whose stale orders
  could be crossed by the new ladder goes first, so the book stays two-sided throughout.
- Everything is integer units: prices on the tick, quantities on the lot, every order at or
  above the minimum quantity and notional, so the core has nothing to reject.
- Open orders are bounded: after each round at most two ladders' worth per market, and
  orders that fall out of the ladder or belong to markets no longer quoted are canceled.
  Leftovers of an earlier run (after a restart) are canceled before the first round.
- Users may fill the maker's orders without the bot seeing those outcomes. Each side's
  refresh starts by renewing its top level, whose outcome shows the maker's ``locked``
  balance of the asset that side holds; when it differs from what the tracked orders hold,
  those orders are suspect and replaced in the same pass (canceling one that is already
  gone answers ``ORDER_NOT_FOUND``, which is expected).
- Rejects are logged at debug and counted (``rejects``); funds are topped up with ledgered
  ``Credit`` commands when a tracked balance runs low or an order is refused for funds.
- ``EngineUnavailable`` (starting, recovering, overloaded) pauses the loop with an
  exponential backoff; every round awaits a sleep, so the loop never spins hot.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from cambist.core.commands import CancelAllOrders, CancelOrder, Command, Credit, PlaceOrder
from cambist.core.events import MarketView, OrderView, Outcome
from cambist.core.numbers import MAX_UNITS, POW10, parse_units
from cambist.core.types import (
    OPEN_STATUSES,
    MarketStatus,
    MarketType,
    OrderType,
    RejectCode,
    Side,
    TimeInForce,
)
from cambist.engine.engine import EngineUnavailable

log = logging.getLogger(__name__)

Execute = Callable[[Command], Awaitable[Outcome]]

# Starting values of the demo's reference prices, in US dollars. A market is quoted when both
# its assets have one; ETH-BTC is derived (3200 / 65000), so the three books agree.
DEFAULT_REFERENCE_USD: dict[str, str] = {"BTC": "65000", "ETH": "3200", "USDT": "1"}
# Stablecoins are the numeraire: their value does not walk.
DEFAULT_PEGGED: frozenset[str] = frozenset({"USDT", "USDC", "DAI"})
USD_SCALE = 6  # reference values are integer micro-dollars: no floats near money

# Rejects that a live exchange produces in normal operation (other users' orders in the way,
# orders filled before our cancel arrived, balances spent elsewhere, a market halted
# between two rounds). Anything else in ``rejects`` points at a bug.
EXPECTED_REJECTS: frozenset[RejectCode] = frozenset(
    {
        RejectCode.POST_ONLY_WOULD_TAKE,
        RejectCode.ORDER_NOT_FOUND,
        RejectCode.INSUFFICIENT_FUNDS,
        RejectCode.MARKET_HALTED,
        RejectCode.UNKNOWN_SYMBOL,
    }
)


@dataclass(frozen=True, slots=True)
class DemoTuning:
    """The finer knobs; the defaults give a realistic-looking book at about one round a second."""

    half_spread_ticks: int = 2  # best bid / ask sit this many ticks from the reference
    level_step_bps: int = 2  # distance between deeper levels, rounded to a 1-2-5 tick grid
    walk_step_ppm: int = 300  # largest reference move per round (0.03 %)
    walk_reversion: int = 1000  # each round pulls 1/this of the distance back to the start
    walk_band_ppm: int = 100_000  # hard bound: the reference stays within ±10 % of its start
    level_usd: tuple[int, int] = (100, 2_500)  # size of a top level; deeper levels are larger
    taker_usd: tuple[int, int] = (20, 400)
    topup_usd: int = 1_000_000  # credited per account and asset; again below a quarter of it
    order_lifetime_rounds: tuple[int, int] = (20, 60)  # orders are renewed so the book stays alive
    max_open_orders: int = 500  # the core allows 1000 per account; ladders shrink to fit
    backoff_s_min: float = 0.5
    backoff_s_max: float = 10.0
    stop_timeout_s: float = 5.0  # how long stop() lets a round in progress finish


@dataclass(slots=True)
class _Quote:
    """One of the maker's resting orders, as the bot last saw it."""

    order_id: int
    side: Side
    price: int
    remaining: int
    hold_asset: str
    hold: int
    renew_at_round: int
    suspect: bool = False  # may have been filled by someone else: replace it


class DemoLiquidity:
    def __init__(
        self,
        execute: Execute,
        markets: Callable[[], list[MarketView]],
        assets: Callable[[], dict[str, int]],
        maker_account: int,
        taker_account: int,
        rng: random.Random | None = None,
        *,
        levels_per_side: int = 10,
        refresh_interval_s: float = 1.0,
        taker_probability: float = 0.6,
        reference_usd: Mapping[str, str] = DEFAULT_REFERENCE_USD,
        pegged: frozenset[str] = DEFAULT_PEGGED,
        tuning: DemoTuning | None = None,
        run_id: str | None = None,
    ) -> None:
        if maker_account == taker_account:
            raise ValueError("maker and taker must be different accounts (self-trade prevention)")
        if maker_account <= 0 or taker_account <= 0:
            raise ValueError("demo accounts must be user accounts (positive ids)")
        if levels_per_side < 1 or not 0.0 <= taker_probability <= 1.0 or refresh_interval_s < 0:
            raise ValueError("levels_per_side >= 1, 0 <= taker_probability <= 1, refresh_interval_s >= 0")
        self._execute = execute
        self._markets = markets
        self._assets = assets
        self.maker_account = maker_account
        self.taker_account = taker_account
        self._rng = rng if rng is not None else random.Random()
        self._levels_per_side = levels_per_side
        self._refresh_interval_s = refresh_interval_s
        self._taker_probability = taker_probability
        self._tuning = tuning if tuning is not None else DemoTuning()
        self._pegged = pegged
        self._usd_start = {asset: parse_units(text, USD_SCALE) for asset, text in reference_usd.items()}
        self._usd = dict(self._usd_start)
        # Credit ids must never repeat across restarts (a repeated id is an idempotent replay).
        self._run_id = run_id if run_id is not None else str(time.time_ns() // 1_000_000)
        self._quotes: dict[str, dict[int, _Quote]] = {}  # symbol -> order id -> quote
        self._available: dict[tuple[int, str], int] = {}  # (account, asset) -> last seen available
        self._needs_resync = True  # cancel whatever the maker left on the books before round one
        self._skipped: set[str] = set()
        self._stopping = False
        self._run_task: asyncio.Task[None] | None = None
        self._in_step = False
        self._credit_serial = 0
        self.rounds = 0
        self.trades = 0
        self.credits = 0
        self.rejects: Counter[RejectCode] = Counter()

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Trade until ``stop()`` or cancellation; engine outages pause it with a backoff."""
        self._run_task = asyncio.current_task()
        self._stopping = False
        backoff_s = self._tuning.backoff_s_min
        while not self._stopping:
            self._in_step = True
            try:
                await self.step()
                pause_s, backoff_s = self._refresh_interval_s, self._tuning.backoff_s_min
            except EngineUnavailable as error:
                level = logging.INFO if backoff_s == self._tuning.backoff_s_min else logging.DEBUG
                log.log(level, "demo liquidity paused (%s); retrying in %.1f s", error, backoff_s)
                pause_s, backoff_s = backoff_s, self._longer(backoff_s)
            except Exception:  # a bug in one round must not end the demo, nor make it spin
                log.exception("demo liquidity round failed; retrying in %.1f s", backoff_s)
                pause_s, backoff_s = backoff_s, self._longer(backoff_s)
            finally:
                self._in_step = False
            if not self._stopping:
                await asyncio.sleep(pause_s)  # every round yields, even with a zero interval

    def _longer(self, backoff_s: float) -> float:
        return min(max(backoff_s * 2, self._tuning.backoff_s_min), self._tuning.backoff_s_max)

    async def stop(self, *, cancel_orders: bool = True) -> None:
        """End ``run()`` and, unless told otherwise, take the maker's orders off the books."""
        self._stopping = True
        task = self._run_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            # Sleeping: end it now. Mid-round: let the round finish, so no command is left
            # applied without the bot seeing its answer (its order would rest untracked).
            if not self._in_step:
                task.cancel()
            done, _ = await asyncio.wait([task], timeout=self._tuning.stop_timeout_s)
            if not done:
                task.cancel()
                await asyncio.wait([task])  # unlike ``await task``, does not raise its cancellation
        self._run_task = None
        if not cancel_orders:
            return
        for symbol in sorted(self._quotes):
            try:
                await self._send(CancelAllOrders(account_id=self.maker_account, symbol=symbol))
            except Exception as error:  # the engine may already be going; the next start cleans up
                log.info("demo liquidity could not cancel its %s orders: %s", symbol, error)
                return
            self._quotes.pop(symbol, None)

    @property
    def open_orders(self) -> int:
        """How many maker orders the bot believes are resting."""
        return sum(len(quotes) for quotes in self._quotes.values())

    # ------------------------------------------------------------------ one round

    async def step(self) -> None:
        """One round: fund, move the references, refresh every ladder, maybe take liquidity."""
        try:
            await self._step()
        except EngineUnavailable:
            # Nothing unacknowledged was applied (the engine answers after commit), so what we
            # track is still right and the books can stay up across the outage.
            raise
        except BaseException:
            # A bug or a cancellation mid-command: start the next round from a clean book.
            self._needs_resync = True
            raise

    async def _step(self) -> None:
        markets = sorted(self._markets(), key=lambda market: market.symbol)
        scales = self._assets()
        if self._needs_resync:
            await self._resync(markets)
        quotable = [market for market in markets if self._quotable(market, scales)]
        await self._fund(quotable, scales)
        self._walk()
        levels = self._levels_for(len(quotable))
        for market in quotable:
            base_unit = POW10[scales[market.base_asset]]
            reference = self._reference_price(market, POW10[scales[market.quote_asset]])
            await self._quote(market, reference, base_unit, levels)
            if self._rng.random() < self._taker_probability:
                await self._take(market, base_unit)
        await self._cancel_unquoted({market.symbol for market in quotable})
        self.rounds += 1

    async def _resync(self, markets: list[MarketView]) -> None:
        """Cancel every maker order on every market, tracked or not (a restart, an outage)."""
        for market in markets:
            await self._send(CancelAllOrders(account_id=self.maker_account, symbol=market.symbol))
        self._quotes.clear()
        self._needs_resync = False

    def _quotable(self, market: MarketView, scales: Mapping[str, int]) -> bool:
        priced = all(
            asset in self._usd and asset in scales for asset in (market.base_asset, market.quote_asset)
        )
        ok = priced and market.status is MarketStatus.TRADING and market.market_type is MarketType.SPOT
        if not ok and market.symbol not in self._skipped:
            self._skipped.add(market.symbol)  # say it once, not every round
            log.info(
                "demo liquidity does not quote %s (halted, not spot or no reference price)", market.symbol
            )
        elif ok:
            self._skipped.discard(market.symbol)
        return ok

    def _levels_for(self, market_count: int) -> int:
        # Two sides, and up to twice the ladder while new orders go in before old ones leave.
        budget = self._tuning.max_open_orders // max(1, market_count) // 4
        return max(1, min(self._levels_per_side, budget))

    # ------------------------------------------------------------------ funds

    async def _fund(self, markets: list[MarketView], scales: Mapping[str, int]) -> None:
        assets = sorted({asset for market in markets for asset in (market.base_asset, market.quote_asset)})
        for account in (self.maker_account, self.taker_account):
            for asset in assets:
                target = (
                    self._tuning.topup_usd * POW10[USD_SCALE] * POW10[scales[asset]] // self._usd_start[asset]
                )
                available = self._available.get((account, asset))
                # Unknown (first round, or after a funds reject) counts as low.
                if target > 0 and (available is None or available < target // 4):
                    await self._credit(account, asset, target)

    async def _credit(self, account: int, asset: str, amount: int) -> None:
        self._credit_serial += 1
        credit_id = f"demo-topup-{account}-{asset}-{self._run_id}-{self._credit_serial}"
        outcome = await self._send(
            Credit(
                credit_id=credit_id, account_id=account, asset=asset, amount=amount, reason="demo liquidity"
            )
        )
        if outcome.reject is None:
            self.credits += 1
        else:
            # Do not retry every round (e.g. the asset's maximum is reached): assume enough.
            self._available[(account, asset)] = amount

    # ------------------------------------------------------------------ reference prices

    def _walk(self) -> None:
        """A small bounded random walk of each asset's dollar value, mean-reverting to its start."""
        tuning = self._tuning
        for asset in sorted(self._usd):
            if asset in self._pegged:
                continue
            start = self._usd_start[asset]
            value = self._usd[asset]
            deviation_ppm = (value - start) * 1_000_000 // start
            move_ppm = self._rng.randint(-tuning.walk_step_ppm, tuning.walk_step_ppm)
            move_ppm -= deviation_ppm // tuning.walk_reversion
            value += value * move_ppm // 1_000_000
            band = start * tuning.walk_band_ppm // 1_000_000
            self._usd[asset] = max(start - band, min(start + band, value, MAX_UNITS - 1), 1)

    def _reference_price(self, market: MarketView, quote_unit: int) -> int:
        """Quote units per whole base unit, from the two assets' dollar values."""
        return self._usd[market.base_asset] * quote_unit // self._usd[market.quote_asset]

    def _ladder(self, market: MarketView, reference: int, levels: int) -> tuple[list[int], list[int]]:
        """Bid and ask prices, best first: a tight top level, then a coarser grid behind it.

        The grid is anchored at multiples of its step, so a small move of the reference
        changes only the top level and at most a level or two at the edges, not every order.
        """
        tick = market.tick_size
        half_spread = self._tuning.half_spread_ticks * tick
        best_bid = reference // tick * tick - half_spread
        best_ask = -(-reference // tick) * tick + half_spread
        step = _grid_step(reference * self._tuning.level_step_bps // 10_000, tick)
        below = (best_bid - 1) // step * step  # the highest grid price under the best bid
        above = (best_ask // step + 1) * step  # the lowest grid price over the best ask
        bids = [best_bid] + [below - i * step for i in range(levels - 1)]
        asks = [best_ask] + [above + i * step for i in range(levels - 1)]
        return [p for p in bids if p > 0], [p for p in asks if p < MAX_UNITS]

    # ------------------------------------------------------------------ sizes

    def _usd_to_base(self, market: MarketView, usd: int, base_unit: int) -> int:
        quantity = usd * POW10[USD_SCALE] * base_unit // self._usd[market.base_asset]
        return quantity - quantity % market.lot_size

    @staticmethod
    def _min_quantity(market: MarketView, price: int, base_unit: int) -> int:
        """The smallest quantity on the lot that meets both the minimum quantity and notional."""
        needed = -(-market.min_notional * base_unit // price)
        lots = -(-needed // market.lot_size)
        return max(market.min_quantity, lots * market.lot_size)

    def _level_quantity(self, market: MarketView, price: int, level: int, base_unit: int) -> int:
        low, high = self._tuning.level_usd
        usd = self._rng.randint(low, high) * (2 + level) // 2  # deeper levels hold more
        return max(self._usd_to_base(market, usd, base_unit), self._min_quantity(market, price, base_unit))

    # ------------------------------------------------------------------ the maker

    async def _quote(self, market: MarketView, reference: int, base_unit: int, levels: int) -> None:
        bids, asks = self._ladder(market, reference, levels)
        quotes = self._quotes.setdefault(market.symbol, {})
        # If a stale ask sits at or under the new best bid, the asks must move first (and the
        # other way round), or the new post-only orders would meet our own old ones.
        asks_first = bool(bids) and any(q.side is Side.SELL and q.price <= bids[0] for q in quotes.values())
        sides = [(Side.SELL, asks), (Side.BUY, bids)] if asks_first else [(Side.BUY, bids), (Side.SELL, asks)]
        for side, prices in sides:
            await self._refresh_side(market, base_unit, side, prices)

    async def _refresh_side(self, market: MarketView, base_unit: int, side: Side, prices: list[int]) -> None:
        quotes = self._quotes.setdefault(market.symbol, {})
        probed = False
        if prices:
            # The top level is renewed every round: it follows the reference anyway, and its
            # outcome shows the maker's locked balance, which exposes fills we did not see.
            probed = await self._place_level(market, base_unit, side, prices[0], 0)
        mine = sorted((q for q in quotes.values() if q.side is side), key=lambda q: q.order_id, reverse=True)
        wanted = set(prices)
        keep: dict[int, _Quote] = {}  # price -> the newest healthy order there
        for quote in mine:
            healthy = (
                quote.price in wanted
                and quote.price not in keep
                and not quote.suspect
                and self.rounds < quote.renew_at_round
                and quote.remaining >= self._min_quantity(market, quote.price, base_unit)
            )
            if healthy:
                keep[quote.price] = quote
        for level, price in enumerate(prices):
            if price not in keep and not (level == 0 and not probed):  # a refused top is not retried
                await self._place_level(market, base_unit, side, price, level)
        for quote in sorted(mine, key=lambda q: q.order_id):
            if keep.get(quote.price) is not quote:
                await self._send(CancelOrder(account_id=self.maker_account, order_id=quote.order_id))
                quotes.pop(quote.order_id, None)  # canceled, or already gone (ORDER_NOT_FOUND)

    async def _place_level(
        self, market: MarketView, base_unit: int, side: Side, price: int, level: int
    ) -> bool:
        quantity = self._level_quantity(market, price, level, base_unit)
        outcome = await self._send(
            PlaceOrder(
                account_id=self.maker_account,
                symbol=market.symbol,
                side=side,
                order_type=OrderType.LIMIT,
                quantity=quantity,
                price=price,
                post_only=True,  # liquidity only: never trade against a user's order
            )
        )
        return outcome.reject is None

    async def _cancel_unquoted(self, quoted: set[str]) -> None:
        for symbol in sorted(set(self._quotes) - quoted):
            quotes = self._quotes[symbol]
            for order_id in sorted(quotes):
                await self._send(CancelOrder(account_id=self.maker_account, order_id=order_id))
                quotes.pop(order_id, None)
            del self._quotes[symbol]

    # ------------------------------------------------------------------ the taker

    async def _take(self, market: MarketView, base_unit: int) -> None:
        """A small market or IOC order that trades with at most the best level of the maker."""
        side = self._rng.choice((Side.BUY, Side.SELL))
        resting = [q for q in self._quotes.get(market.symbol, {}).values() if q.side is not side]
        if not resting:
            return
        best = (
            min(resting, key=lambda q: q.price) if side is Side.BUY else max(resting, key=lambda q: q.price)
        )
        least = self._min_quantity(market, best.price, base_unit)
        wanted = self._usd_to_base(market, self._rng.randint(*self._tuning.taker_usd), base_unit)
        # Never more than the best level, so the side it hits keeps its other levels.
        quantity = min(max(wanted, least), best.remaining)
        if quantity < least:
            return
        kind = self._rng.randrange(3)
        command: PlaceOrder
        if kind == 0:
            command = PlaceOrder(
                account_id=self.taker_account,
                symbol=market.symbol,
                side=side,
                order_type=OrderType.MARKET,
                quantity=quantity,
            )
        elif kind == 1:  # sized in quote: spend (buy) or receive (sell) this much
            command = PlaceOrder(
                account_id=self.taker_account,
                symbol=market.symbol,
                side=side,
                order_type=OrderType.MARKET,
                quote_quantity=quantity * best.price // base_unit,
            )
        else:
            command = PlaceOrder(
                account_id=self.taker_account,
                symbol=market.symbol,
                side=side,
                order_type=OrderType.LIMIT,
                quantity=quantity,
                price=best.price,
                time_in_force=TimeInForce.IOC,
            )
        outcome = await self._send(command)
        self.trades += len(outcome.trades)

    # ------------------------------------------------------------------ commands and what they tell

    async def _send(self, command: Command) -> Outcome:
        outcome = await self._execute(command)
        self._observe(command, outcome)
        if outcome.reject is not None:
            self.rejects[outcome.reject] += 1
            log.debug("demo %s rejected: %s %s", type(command).__name__, outcome.reject, outcome.message)
            if outcome.reject is RejectCode.INSUFFICIENT_FUNDS and isinstance(command, PlaceOrder):
                base, _, quote = command.symbol.partition("-")
                # Spent elsewhere or used up: forget it, so the next round tops it up.
                self._available.pop((command.account_id, quote if command.side is Side.BUY else base), None)
            elif outcome.reject is RejectCode.TOO_MANY_OPEN_ORDERS:
                self._needs_resync = True  # orders we do not know about: start from a clean book
        return outcome

    def _observe(self, command: Command, outcome: Outcome) -> None:
        views = outcome.orders if outcome.order is None else (outcome.order, *outcome.orders)
        for view in views:
            if view.account_id == self.maker_account:
                self._observe_order(view, is_new=view is outcome.order and isinstance(command, PlaceOrder))
        new_order_id = outcome.order.order_id if outcome.order is not None else None
        for balance in outcome.balances:
            if balance.account_id in (self.maker_account, self.taker_account):
                self._available[(balance.account_id, balance.asset)] = balance.available
            if balance.account_id == self.maker_account:
                self._check_holds(balance.asset, balance.locked, new_order_id)

    def _observe_order(self, view: OrderView, *, is_new: bool) -> None:
        quotes = self._quotes.setdefault(view.symbol, {})
        remaining = (view.quantity or 0) - view.filled_quantity
        if view.status not in OPEN_STATUSES:
            quotes.pop(view.order_id, None)
            return
        quote = quotes.get(view.order_id)
        if quote is not None:
            quote.remaining = remaining
            quote.hold = view.hold_remaining
        elif is_new and view.price is not None:
            low, high = self._tuning.order_lifetime_rounds
            quotes[view.order_id] = _Quote(
                order_id=view.order_id,
                side=view.side,
                price=view.price,
                remaining=remaining,
                hold_asset=view.hold_asset,
                hold=view.hold_remaining,
                renew_at_round=self.rounds + self._rng.randint(low, high),
            )

    def _check_holds(self, asset: str, locked: int, new_order_id: int | None) -> None:
        """Compare the core's locked balance with what the tracked orders hold.

        The core keeps locked equal to what the maker's open orders hold (an invariant). Less
        means someone else filled orders we track; more means orders we do not know about
        (a command applied whose answer we lost), which only a full resync can clean up.
        """
        holding = [q for quotes in self._quotes.values() for q in quotes.values() if q.hold_asset == asset]
        tracked = sum(q.hold for q in holding)
        if locked > tracked:
            self._needs_resync = True
            return
        if locked == tracked or any(q.suspect for q in holding):
            return  # consistent, or already explained by suspects waiting to be replaced
        for quote in holding:
            # The order this very outcome created is exact; every older one may be stale.
            quote.suspect = quote.order_id != new_order_id


def _grid_step(raw: int, tick: int) -> int:
    """``raw`` rounded down to 1, 2 or 5 times a power of ten ticks (at least one tick).

    A round step keeps the deeper levels on the same prices while the reference drifts.
    """
    ticks = max(1, raw // tick)
    magnitude = POW10[len(str(ticks)) - 1]
    lead = ticks // magnitude
    nice = 5 if lead >= 5 else 2 if lead >= 2 else 1
    return nice * magnitude * tick
