"""Core throughput against a bare order-book loop, on the same seeded command mix.

    python bench/core_bench.py [--commands 200000] [--seed 7] [--repeat 3] [--profile]

(a) **baseline**: a minimal, honest price-time matching loop in this process — a
    ``SortedDict`` of price -> ``OrderedDict`` of order id -> remaining quantity per side,
    limit orders that cross and rest, market orders, cancels by id — with no risk checks,
    fees, ledger, events or invariant checks.
(b) **core**: ``ExchangeCore`` with everything on — validation, holds, fees, the double-entry
    ledger, outcomes and change tracking, its per-command checks and incremental state hash —
    plus a full ``check_invariants`` every 10,000 commands and ``take_changes()`` every 64
    commands, as the engine does per batch.

Both replay one pre-generated mix (built before any timing): ~58 % limit orders around a
mean-reverting random-walk mid, 30 % of them priced through it (about 27 % trade on arrival),
the rest resting 1-40 ticks behind it with larger sizes (1-200 lots against 1-10 for takers);
~32 % cancels, each of an order open at that point (the mix only cancels while the book holds
>= 1,000 orders, which keeps it ~1,000 orders over ~130 levels deep and caps the cancel share
a little under the 35 % aimed at); ~10 % market orders sized in base. Buyers and sellers are
disjoint accounts, so self-trade prevention never fires and both engines must execute exactly
the same trades: the script checks that before it prints the ratio.

Times are process CPU time (best of ``--repeat``), which a busy machine disturbs less than
wall time; still compare figures taken on the same machine in the same run.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import platform
import pstats
import random
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sortedcontainers import SortedDict

try:
    import cambist  # noqa: F401
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cambist.core.checks import check_invariants
from cambist.core.commands import AddAsset, CancelOrder, Command, Credit, PlaceOrder, UpsertMarket
from cambist.core.exchange import ExchangeCore
from cambist.core.types import OrderType, Side

SYMBOL = "BTC-USDT"
BASE_UNIT = 10**8  # BTC scale 8
TICK = 10**6  # 0.01 USDT (scale 8)
LOT = 10**4  # 0.0001 BTC
ACCOUNTS_PER_SIDE = 200  # at most 1000 open orders per account in the core
TAKE_CHANGES_EVERY = 64
FULL_CHECK_EVERY = 10_000
BOOK_DEPTH_MIN = 1_000  # open orders; below it the mix places instead of canceling
# Draws below CANCEL_ROLL cancel (when the book is deep enough, else they place a limit order),
# the next MARKET_SHARE send a market order, the rest limit orders: ~58/32/10 in the end (the
# cancel share is what a book kept >= BOOK_DEPTH_MIN deep allows).
CANCEL_ROLL = 0.45
MARKET_SHARE = 0.10

# One pre-generated operation: (kind, order_id, account, is_buy, price, quantity).
# kind: "L" limit, "M" market (price 0), "C" cancel (only order_id and account matter).
Op = tuple[str, int, int, bool, int, int]


# ---------------------------------------------------------------------------- baseline


class BareBook:
    """Price-time matching and nothing else: what the core costs is measured against this."""

    __slots__ = ("asks", "bids", "index", "trades")

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()  # -price -> OrderedDict[id, qty]
        self.asks: SortedDict = SortedDict()  # price -> OrderedDict[id, qty]
        self.index: dict[int, tuple[bool, int]] = {}  # id -> (is_buy, book key)
        self.trades = 0

    def limit(self, order_id: int, is_buy: bool, price: int, quantity: int) -> None:
        quantity = self._match(is_buy, price, quantity)
        if quantity:
            side, key = (self.bids, -price) if is_buy else (self.asks, price)
            level = side.get(key)
            if level is None:
                level = side[key] = OrderedDict()
            level[order_id] = quantity
            self.index[order_id] = (is_buy, key)

    def market(self, is_buy: bool, quantity: int) -> None:
        self._match(is_buy, None, quantity)

    def cancel(self, order_id: int) -> bool:
        where = self.index.pop(order_id, None)
        if where is None:
            return False
        is_buy, key = where
        side = self.bids if is_buy else self.asks
        level = side[key]
        del level[order_id]
        if not level:
            del side[key]
        return True

    def _match(self, is_buy: bool, limit: int | None, quantity: int) -> int:
        opposite = self.asks if is_buy else self.bids
        while quantity and opposite:
            key, level = opposite.peekitem(0)
            price = key if is_buy else -key
            if limit is not None and (price > limit if is_buy else price < limit):
                break
            while quantity and level:
                maker_id, maker_qty = next(iter(level.items()))
                fill = min(quantity, maker_qty)
                quantity -= fill
                self.trades += 1
                if fill == maker_qty:
                    del level[maker_id]
                    del self.index[maker_id]
                else:
                    level[maker_id] = maker_qty - fill
            if not level:
                del opposite[key]
        return quantity


def run_baseline(ops: list[Op]) -> BareBook:
    book = BareBook()
    limit, market, cancel = book.limit, book.market, book.cancel
    for kind, order_id, _account, is_buy, price, quantity in ops:
        if kind == "L":
            limit(order_id, is_buy, price, quantity)
        elif kind == "C":
            cancel(order_id)
        else:
            market(is_buy, quantity)
    return book


# ---------------------------------------------------------------------------- the mix


@dataclass
class Mix:
    ops: list[Op]
    limits: int
    cancels: int
    markets: int
    crossing: float  # share of limit orders that traded on arrival


def generate(count: int, seed: int) -> Mix:
    """The command mix; a BareBook tracks which orders are open so every cancel hits one."""
    rng = random.Random(seed)
    shadow = BareBook()
    open_ids: list[int] = []  # candidates; filled ones are dropped lazily
    accounts: dict[int, int] = {}
    ops: list[Op] = []
    start = mid = 50_000 * BASE_UNIT // TICK  # in ticks
    next_id = 1
    limits = cancels = markets = crossing = 0
    for _ in range(count):
        # A random walk that drifts back towards where it started, so the book stays deep
        # around the mid instead of trailing stale levels behind a runaway price.
        mid += rng.choice((-1, 0, 0, 1)) + (1 if mid < start - 100 else -1 if mid > start + 100 else 0)
        roll = rng.random()
        if roll < CANCEL_ROLL and len(shadow.index) >= BOOK_DEPTH_MIN:
            target = _pick_open(rng, open_ids, shadow)
            if target is not None:
                shadow.cancel(target)
                ops.append(("C", target, accounts.pop(target), False, 0, 0))
                cancels += 1
                continue
        if roll < CANCEL_ROLL:  # the book is thin: rest another order instead of canceling one
            roll = 1.0
        is_buy = rng.random() < 0.5
        account = rng.randrange(ACCOUNTS_PER_SIDE) + (1 if is_buy else 1 + ACCOUNTS_PER_SIDE)
        # Makers rest larger sizes than takers take, as on a real book: most fills are partial,
        # so the book keeps its depth although a third of all commands cancel a resting order.
        quantity = rng.randint(1, 10) * LOT
        order_id, next_id = next_id, next_id + 1  # the core numbers every accepted order
        if roll < CANCEL_ROLL + MARKET_SHARE:
            ops.append(("M", order_id, account, is_buy, 0, quantity))
            shadow.market(is_buy, quantity)
            markets += 1
            continue
        if rng.random() < 0.3:  # through the mid: trades
            ticks = mid + rng.randint(0, 8) if is_buy else mid - rng.randint(0, 8)
        else:  # behind the mid: rests
            ticks = mid - rng.randint(1, 40) if is_buy else mid + rng.randint(1, 40)
            quantity = rng.randint(1, 200) * LOT
        price = ticks * TICK
        ops.append(("L", order_id, account, is_buy, price, quantity))
        trades_before = shadow.trades
        shadow.limit(order_id, is_buy, price, quantity)
        limits += 1
        crossing += shadow.trades > trades_before
        if order_id in shadow.index:
            open_ids.append(order_id)
            accounts[order_id] = account
    return Mix(ops, limits, cancels, markets, crossing / max(limits, 1))


def _pick_open(rng: random.Random, open_ids: list[int], book: BareBook) -> int | None:
    """A random order that is still open; ids filled since they rested are dropped here."""
    while open_ids:
        i = rng.randrange(len(open_ids))
        open_ids[i], open_ids[-1] = open_ids[-1], open_ids[i]
        order_id = open_ids.pop()
        if order_id in book.index:
            return order_id
    return None


# ---------------------------------------------------------------------------- core


def core_setup() -> tuple[ExchangeCore, int]:
    """A core with the market and every account funded far beyond what the mix trades."""
    core = ExchangeCore()
    setup: list[Command] = [
        AddAsset("BTC", 8),
        AddAsset("USDT", 8),
        UpsertMarket(SYMBOL, "BTC", "USDT", TICK, LOT, LOT, 0, 1000, 2000),
    ]
    for account in range(1, 2 * ACCOUNTS_PER_SIDE + 1):
        setup.append(Credit(f"b{account}", account, "BTC", 10_000 * BASE_UNIT, "bench"))
        setup.append(Credit(f"u{account}", account, "USDT", 10**7 * 10**8, "bench"))
    for seq, command in enumerate(setup, start=1):
        outcome = core.apply(command, seq, seq)
        assert outcome.reject is None, outcome
    core.take_changes()
    return core, len(setup)


def core_commands(ops: list[Op]) -> list[Command]:
    commands: list[Command] = []
    for kind, order_id, account, is_buy, price, quantity in ops:
        side = Side.BUY if is_buy else Side.SELL
        if kind == "L":
            commands.append(
                PlaceOrder(account, SYMBOL, side, OrderType.LIMIT, quantity=quantity, price=price)
            )
        elif kind == "M":
            commands.append(PlaceOrder(account, SYMBOL, side, OrderType.MARKET, quantity=quantity))
        else:
            commands.append(CancelOrder(account, order_id))
    return commands


def run_core(core: ExchangeCore, first_seq: int, commands: list[Command]) -> tuple[int, int]:
    """Apply every command as the engine would; returns (trades, rejects)."""
    apply, take_changes = core.apply, core.take_changes
    trades = rejects = 0
    seq = first_seq
    for n, command in enumerate(commands, start=1):
        seq += 1
        outcome = apply(command, seq, seq)
        trades += len(outcome.trades)
        if outcome.reject is not None:
            rejects += 1
        if n % TAKE_CHANGES_EVERY == 0:
            take_changes()
        if n % FULL_CHECK_EVERY == 0:
            check_invariants(core)
    take_changes()
    check_invariants(core)
    return trades, rejects


# ---------------------------------------------------------------------------- main


def best_of(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed core runs (baseline: 5x as many); the best counts"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one core run, print hotspots")
    args = parser.parse_args()

    mix = generate(args.commands, args.seed)
    commands = core_commands(mix.ops)
    n = len(mix.ops)
    print(
        f"machine   {platform.platform()} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} CPUs | Python {platform.python_version()} ({platform.python_implementation()})"
    )
    print(
        f"mix       {n:,} commands (seed {args.seed}): {mix.limits:,} limit ({mix.limits / n:.0%}), "
        f"{mix.cancels:,} cancel ({mix.cancels / n:.0%}), {mix.markets:,} market ({mix.markets / n:.0%})"
    )

    baseline_book = BareBook()

    def time_baseline() -> float:
        nonlocal baseline_book
        gc.collect()
        start = time.process_time()
        baseline_book = run_baseline(mix.ops)
        return time.process_time() - start

    core_result = (0, 0)

    def time_core() -> float:
        nonlocal core_result
        core, last_seq = core_setup()
        gc.collect()
        start = time.process_time()
        core_result = run_core(core, last_seq, commands)
        return time.process_time() - start

    baseline_s = best_of(5 * args.repeat, time_baseline)  # short runs: more tries against noise
    core_s = best_of(args.repeat, time_core)
    core_trades, core_rejects = core_result
    if core_trades != baseline_book.trades or core_rejects:
        sys.exit(
            f"engines disagree: baseline {baseline_book.trades} trades, core {core_trades} "
            f"trades and {core_rejects} rejects"
        )
    baseline_rate, core_rate = n / baseline_s, n / core_s
    print(
        f"book      {len(baseline_book.index):,} open orders at the end; mix keeps >= {BOOK_DEPTH_MIN:,} "
        f"open before it cancels; {mix.crossing:.0%} of limit orders trade on arrival"
    )
    print(
        f"baseline  {baseline_rate:>10,.0f} commands/s  ({baseline_s:.3f} s CPU, {baseline_book.trades:,} trades)"
    )
    print(
        f"core      {core_rate:>10,.0f} commands/s  ({core_s:.3f} s CPU, {core_trades:,} trades, "
        f"take_changes every {TAKE_CHANGES_EVERY}, full check every {FULL_CHECK_EVERY:,})"
    )
    print(f"ratio     core/baseline = {core_rate / baseline_rate:.1%} (target >= 60%)")

    if args.profile:
        core, last_seq = core_setup()
        profiler = cProfile.Profile()
        profiler.runcall(run_core, core, last_seq, commands)
        stats = pstats.Stats(profiler).strip_dirs().sort_stats("tottime")
        stats.print_stats(25)


if __name__ == "__main__":
    main()
