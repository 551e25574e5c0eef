"""Core throughput with 10,000 resting stop and take-profit orders, beside the plain mix.

    python bench/stops_bench.py [--commands 100000] [--warmup 5000] [--stops 10000]
                                [--trigger-share 0,0.01,0.1,0.5] [--seed 7] [--repeat 2] [--profile]

Every run starts from the same core: ``core_bench``'s market and 400 funded mix accounts, plus
40 funded accounts for the stops (20 buying, 20 selling: at most 1,000 open orders each), and
the first ``--warmup`` commands of the mix applied untimed, so the book is ~1,000 orders deep
and the market has a last price that every stop is checked against, as a client's would be.
Then:

(a) **plain**: the rest of ``core_bench``'s seeded mix (limit orders around a random-walk mid,
    cancels, market orders), timed, with no conditional order anywhere.
(b) **stops S**: first ``--stops`` untriggered conditional orders (their placement timed on
    its own: placement throughput), then the same timed mix. A share S of them get stop
    prices spread evenly over the range the plain mix trades over after the warm-up (from a
    shadow run of the mix): each takes a kind that waits for its direction (a stop buy or
    take-profit sell above the last price, a stop sell or take-profit buy below it; limit or
    market, chosen at random), so the triggered orders buy and sell about equally and do not
    run the price away. The rest, a quarter each of stop-limit, stop-market,
    take-profit-limit and take-profit-market, half buys and half sells, wait 30-2,030 ticks
    beyond that range, where the mix never trades. Sizes are 1-10 lots (market buys spend the
    quote of that at their stop); limit prices are 0-5 ticks past the stop. Triggered orders
    change the book, so the price path could drift from the plan: the measured share is
    printed.

Both apply the commands as the engine does (``take_changes()`` every 64 commands) but, unlike
``core_bench``, without a timed full ``check_invariants`` every 10,000 commands: that check
walks every order, so it would charge the 10,000 stops a cost the engine never pays.

Per configuration it prints commands/s (best of ``--repeat``, process CPU time, runs of all
configurations interleaved against drift), the ratio to plain, how many stops triggered, the
commands that triggered any, the cascade rounds (a round is one pass of ``_run_triggers``
that triggered something; round >= 2 orders were reached by triggered orders' own trades),
and the extra cost per triggered order against the 0 % run (as many resting stops, none in
reach), which includes the triggered orders' own matching and settlement and what they change
for the mix after them. With 1 % (100 triggered orders) that difference is within the noise.

Checks, all outside the timed part: the plain run executes exactly the trades of a bare
matching loop on the same mix; the only rejects are cancels of mix orders that triggered
stops filled first; every run of one configuration ends in the same state hash;
``check_invariants`` on each configuration's final state; the triggered count agrees three
ways (trigger calls, order views in the outcomes, statuses and trigger lists at the end).
Recording the triggers wraps ``ExchangeCore._trigger`` on the instance (one extra Python call
per triggered order; the plain run has the same wrapper, never called).
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
from dataclasses import dataclass, field

from core_bench import (
    ACCOUNTS_PER_SIDE,
    BASE_UNIT,
    LOT,
    SYMBOL,
    TAKE_CHANGES_EVERY,
    TICK,
    BareBook,
    Op,
    core_setup,
    generate,
)

from cambist.core.checks import check_invariants
from cambist.core.commands import CancelOrder, Command, Credit, PlaceOrder
from cambist.core.events import Outcome
from cambist.core.exchange import ExchangeCore
from cambist.core.orders import Order
from cambist.core.types import OrderStatus, OrderType, RejectCode, Side, triggers_on_rise

START = 50_000 * BASE_UNIT  # the mix's starting mid, as a price
STOP_ACCOUNTS = 40  # 20 buying, 20 selling; at most 1,000 open orders per account
FIRST_STOP_ACCOUNT = 2 * ACCOUNTS_PER_SIDE + 1  # after the mix's 400 accounts
SEED_SELLER, SEED_BUYER = FIRST_STOP_ACCOUNT + STOP_ACCOUNTS, FIRST_STOP_ACCOUNT + STOP_ACCOUNTS + 1
OUT_OF_RANGE = (30, 2_030)  # ticks beyond the mix's traded range for stops that must not trigger
KINDS = (
    (OrderType.STOP_LIMIT, Side.BUY),
    (OrderType.STOP_LIMIT, Side.SELL),
    (OrderType.STOP_MARKET, Side.BUY),
    (OrderType.STOP_MARKET, Side.SELL),
    (OrderType.TAKE_PROFIT_LIMIT, Side.BUY),
    (OrderType.TAKE_PROFIT_LIMIT, Side.SELL),
    (OrderType.TAKE_PROFIT_MARKET, Side.BUY),
    (OrderType.TAKE_PROFIT_MARKET, Side.SELL),
)


# ---------------------------------------------------------------------------- the price range


class RecordingBook(BareBook):
    """``BareBook`` that keeps the lowest and highest price it traded at."""

    __slots__ = ("high", "last", "low")

    def __init__(self) -> None:
        super().__init__()
        self.low = self.high = self.last = START

    def _match(self, is_buy: bool, limit: int | None, quantity: int) -> int:
        # BareBook._match, plus the price of every level that traded.
        opposite = self.asks if is_buy else self.bids
        while quantity and opposite:
            key, level = opposite.peekitem(0)
            price = key if is_buy else -key
            if limit is not None and (price > limit if is_buy else price < limit):
                break
            self.low, self.high, self.last = min(self.low, price), max(self.high, price), price
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


def traded_range(ops: list[Op], warmup: int) -> tuple[int, int, int]:
    """(last price after the warm-up, lowest and highest price traded after it)."""
    book = RecordingBook()
    for n, (kind, order_id, _account, is_buy, price, quantity) in enumerate(ops):
        if n == warmup:
            book.low = book.high = book.last
            last = book.last
        if kind == "L":
            book.limit(order_id, is_buy, price, quantity)
        elif kind == "C":
            book.cancel(order_id)
        else:
            book.market(is_buy, quantity)
    return last, book.low, book.high


# ---------------------------------------------------------------------------- the stops


def stop_commands(count: int, share: float, last: int, low: int, high: int, seed: int) -> list[PlaceOrder]:
    """``count`` conditional orders, all valid against the last price ``last``, of which
    ``share`` have stops inside [low, high] (spread evenly over each side of ``last``)."""
    rng = random.Random(seed * 1_000_003 + count)
    below = (last - low) // TICK  # ticks the mix trades below the last price
    above = (high - last) // TICK
    if share and not below + above:
        raise SystemExit("the mix never trades away from the last price: no stop can be reached")
    rising = [k for k in KINDS if triggers_on_rise(*k)]
    falling = [k for k in KINDS if not triggers_on_rise(*k)]
    reachable = set(rng.sample(range(count), round(share * count)))
    half = STOP_ACCOUNTS // 2
    commands: list[PlaceOrder] = []
    for i in range(count):
        if i in reachable:  # evenly over the traded range: as many stops on each tick
            ticks = rng.randint(-below, above - 1)
            ticks += ticks >= 0  # never at the last price itself
            order_type, side = rng.choice(rising if ticks > 0 else falling)
        else:  # beyond it, as many of each kind
            order_type, side = KINDS[i % len(KINDS)]
            beyond = rng.randint(*OUT_OF_RANGE)
            ticks = above + beyond if triggers_on_rise(order_type, side) else -below - beyond
        stop = last + ticks * TICK
        lots = rng.randint(1, 10) * LOT
        account = FIRST_STOP_ACCOUNT + rng.randrange(half) + (0 if side is Side.BUY else half)
        if order_type in (OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
            slack = rng.randint(0, 5) * TICK  # the limit lets the order take a little past its stop
            price = stop + slack if side is Side.BUY else stop - slack
            command = PlaceOrder(
                account, SYMBOL, side, order_type, quantity=lots, price=price, stop_price=stop
            )
        elif side is Side.BUY:  # a stop/take-profit market buy spends a quote amount
            quote = lots * stop // BASE_UNIT
            command = PlaceOrder(account, SYMBOL, side, order_type, quote_quantity=quote, stop_price=stop)
        else:
            command = PlaceOrder(account, SYMBOL, side, order_type, quantity=lots, stop_price=stop)
        commands.append(command)
    return commands


# ---------------------------------------------------------------------------- a run


def mix_commands(ops: list[Op], warmup: int, stops: int) -> list[Command]:
    """``core_bench.core_commands``, with the ids of orders placed after the warm-up moved past
    the stops placed there (the core numbers orders 1, 2, ...; triggered orders keep theirs)."""
    last_warm_id = max((op[1] for op in ops[:warmup] if op[0] != "C"), default=0)
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
            commands.append(CancelOrder(account, order_id + (stops if order_id > last_warm_id else 0)))
    return commands


def setup(
    stop_placements: list[PlaceOrder], warm: list[Command], last: int
) -> tuple[ExchangeCore, int, int, float]:
    """``core_bench``'s core, the stop accounts funded, the warm-up applied, then the stops.
    Returns (core, last seq, trades in the warm-up, CPU seconds placing the stops)."""
    core, seq = core_setup()
    for account in range(FIRST_STOP_ACCOUNT, FIRST_STOP_ACCOUNT + STOP_ACCOUNTS):
        warm = [
            Credit(f"sb{account}", account, "BTC", 10_000 * BASE_UNIT, "bench"),
            Credit(f"su{account}", account, "USDT", 10**7 * 10**8, "bench"),
            *warm,
        ]
    trades = 0
    for command in warm:
        seq += 1
        outcome = core.apply(command, seq, seq)
        assert outcome.reject is None, outcome
        trades += len(outcome.trades)
    assert core.markets[SYMBOL].last_price == last, (core.markets[SYMBOL].last_price, last)
    core.take_changes()
    gc.collect()
    apply = core.apply
    start = time.process_time()
    for command in stop_placements:
        seq += 1
        outcome = apply(command, seq, seq)
        if outcome.reject is not None:
            raise SystemExit(f"stop rejected: {outcome.reject} {outcome.message} {command!r}")
    placed = time.process_time() - start
    core.take_changes()
    return core, seq, trades, placed


@dataclass
class Run:
    seconds: float
    placed_seconds: float
    trades: int
    rejects: int
    warm_trades: int
    state_hash: str
    core: ExchangeCore
    first_seq: int  # the seq before the timed mix
    first_stop_id: int
    # (seq, order_id, trades of the command so far) per trigger, and the outcomes of those commands
    triggers: list[tuple[int, int, int]] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)


def run(stop_placements: list[PlaceOrder], commands: list[Command], warmup: int, last: int) -> Run:
    core, seq, warm_trades, placed = setup(stop_placements, commands[:warmup], last)
    first_stop_id = core.next_order_id - len(stop_placements)
    commands = commands[warmup:]
    log: list[tuple[int, int, int]] = []
    trigger = core._trigger

    def recording_trigger(order: Order, market: object, seq: int, time: int) -> None:
        log.append((seq, order.order_id, len(core._scope.trades)))
        trigger(order, market, seq, time)  # type: ignore[arg-type]

    core._trigger = recording_trigger  # type: ignore[method-assign]
    kept: dict[int, Outcome] = {}
    apply, take_changes = core.apply, core.take_changes
    trades = rejects = 0
    reject_codes: set[tuple[str, RejectCode]] = set()
    first_seq = seq
    gc.collect()
    start = time.process_time()
    for n, command in enumerate(commands, start=1):
        seq += 1
        outcome = apply(command, seq, seq)
        trades += len(outcome.trades)
        if outcome.reject is not None:
            rejects += 1
            reject_codes.add((type(command).__name__, outcome.reject))
        if log and log[-1][0] == seq:
            kept[seq] = outcome
        if n % TAKE_CHANGES_EVERY == 0:
            take_changes()
    take_changes()
    seconds = time.process_time() - start
    # A stop that triggers may fill a mix order the mix cancels later: nothing else may fail.
    if reject_codes - {("CancelOrder", RejectCode.ORDER_NOT_FOUND)}:
        raise SystemExit(f"unexpected rejects: {sorted(reject_codes)}")
    return Run(
        seconds,
        placed,
        trades,
        rejects,
        warm_trades,
        core.state_hash(),
        core,
        first_seq,
        first_stop_id,
        log,
        kept,
    )


# ---------------------------------------------------------------------------- what triggered


@dataclass
class Triggered:
    orders: int = 0
    commands: int = 0
    max_per_command: int = 0
    rounds_max: int = 0
    multi_round_commands: int = 0
    cascaded: int = 0  # orders triggered in round >= 2
    when: list[int] = field(default_factory=list)  # command index (1-based) per trigger


def analyse(result: Run, stops: list[PlaceOrder]) -> Triggered:
    """Cascade rounds from the trigger log, cross-checked three ways against the final state."""
    core = result.core
    stop_of = {result.first_stop_id + i: cmd for i, cmd in enumerate(stops)}
    by_seq: dict[int, list[tuple[int, int]]] = {}
    for seq, order_id, trades_before in result.triggers:
        if order_id not in stop_of:
            raise SystemExit(f"order {order_id} triggered but is not one of the stops")
        by_seq.setdefault(seq, []).append((order_id, trades_before))
    stats = Triggered(orders=len(result.triggers), commands=len(by_seq))
    for seq, entries in by_seq.items():
        stats.max_per_command = max(stats.max_per_command, len(entries))
        stats.when.extend([seq - result.first_seq] * len(entries))
        prices = [t.price for t in result.outcomes[seq].trades]
        # _run_triggers: a round triggers every waiting order the previous round's trades
        # reached, so the log splits into maximal runs each reached by the trades before it.
        checked, i, rounds = 0, 0, 0
        while i < len(entries):
            upto = entries[i][1]
            segment = prices[checked:upto]
            if not segment:
                raise SystemExit(f"seq {seq}: a trigger with no new trade before it")
            low, high = min(segment), max(segment)
            j = i
            while j < len(entries):
                cmd = stop_of[entries[j][0]]
                assert cmd.stop_price is not None
                rises = triggers_on_rise(cmd.order_type, cmd.side)
                if not (cmd.stop_price <= high if rises else cmd.stop_price >= low):
                    break
                j += 1
            if j == i:
                raise SystemExit(f"seq {seq}: order {entries[i][0]} triggered but no trade reached it")
            rounds += 1
            if rounds > 1:
                stats.cascaded += j - i
            checked, i = upto, j
        stats.rounds_max = max(stats.rounds_max, rounds)
        stats.multi_round_commands += rounds > 1
    # The outcomes saw each triggered stop leave UNTRIGGERED exactly once.
    seen: set[int] = set()
    for outcome in result.outcomes.values():
        views = (outcome.order, *outcome.orders) if outcome.order is not None else outcome.orders
        seen.update(
            v.order_id for v in views if v.order_id in stop_of and v.status is not OrderStatus.UNTRIGGERED
        )
    # And the end state: what still waits is exactly the rest.
    market = core.markets[SYMBOL]
    waiting = {oid for _, oid in market.on_rise} | {oid for _, oid in market.on_fall}
    untriggered = {oid for oid, o in core.orders.items() if o.status is OrderStatus.UNTRIGGERED}
    logged = {oid for _, oid, _ in result.triggers}
    if not (
        waiting == untriggered
        and len(logged) == len(result.triggers)
        and seen == logged
        and logged | untriggered == set(stop_of)
        and not logged & untriggered
    ):
        raise SystemExit(
            f"triggered counts disagree: {len(result.triggers)} trigger calls, {len(seen)} in outcomes, "
            f"{len(stop_of) - len(untriggered)} by status, {len(waiting)} still waiting"
        )
    check_invariants(core)
    return stats


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=100_000, help="timed mix commands")
    parser.add_argument(
        "--warmup", type=int, default=5_000, help="mix commands applied (untimed) before the stops"
    )
    parser.add_argument("--stops", type=int, default=10_000)
    parser.add_argument(
        "--trigger-share",
        default="0,0.01,0.1,0.5",
        help="comma-separated shares of the stops to place in reach",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per configuration; the best counts")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the timed mix, plain and with the first share's stops",
    )
    args = parser.parse_args()
    shares = [float(s) for s in args.trigger_share.split(",")]
    if args.stops > STOP_ACCOUNTS * 1_000 or not all(0 <= s <= 1 for s in shares):
        parser.error(f"at most {STOP_ACCOUNTS * 1_000} stops, shares within 0..1")

    mix = generate(args.warmup + args.commands, args.seed)
    n = args.commands
    last, low, high = traded_range(mix.ops, args.warmup)
    plans: list[tuple[str, list[PlaceOrder]]] = [("plain", [])]
    plans += [(f"stops {s:.0%}", stop_commands(args.stops, s, last, low, high, args.seed)) for s in shares]
    commands = {
        0: mix_commands(mix.ops, args.warmup, 0),
        args.stops: mix_commands(mix.ops, args.warmup, args.stops),
    }
    print(
        f"machine   {platform.platform()} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} CPUs | Python {platform.python_version()} ({platform.python_implementation()}) "
        f"| load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"mix       {args.warmup:,} warm-up + {n:,} timed commands (seed {args.seed}; {mix.limits:,} limit, "
        f"{mix.cancels:,} cancel, {mix.markets:,} market in all); after the warm-up the plain mix trades "
        f"{(last - low) // TICK} ticks below to {(high - last) // TICK} above the last price"
    )
    print(
        f"stops     {args.stops:,} per run, placed after the warm-up: stop/take-profit x limit/market x "
        f"buy/sell in equal parts; the share in reach spread over that range, the rest "
        f"{OUT_OF_RANGE[0]:,}-{OUT_OF_RANGE[1]:,} ticks beyond it"
    )

    best: dict[str, Run] = {}
    hashes: dict[str, set[str]] = {}
    for _ in range(args.repeat):  # interleaved, so drift of the machine hits every configuration
        for name, stops in plans:
            result = run(stops, commands[len(stops)], args.warmup, last)
            hashes.setdefault(name, set()).add(result.state_hash)
            previous = best.get(name)
            if previous is None or result.seconds < previous.seconds:
                if previous is not None:
                    result.placed_seconds = min(previous.placed_seconds, result.placed_seconds)
                best[name] = result
            else:
                previous.placed_seconds = min(previous.placed_seconds, result.placed_seconds)
            del result

    # Checks (untimed).
    plain = best["plain"]
    shadow = BareBook()
    for kind, order_id, _account, is_buy, price, quantity in mix.ops:
        if kind == "L":
            shadow.limit(order_id, is_buy, price, quantity)
        elif kind == "C":
            shadow.cancel(order_id)
        else:
            shadow.market(is_buy, quantity)
    if plain.warm_trades + plain.trades != shadow.trades or plain.rejects or plain.triggers:
        sys.exit(
            f"plain run: {plain.warm_trades + plain.trades} trades (bare loop {shadow.trades}), "
            f"{plain.rejects} rejects"
        )
    check_invariants(plain.core)
    for name, seen in hashes.items():
        if len(seen) != 1:
            sys.exit(f"{name}: runs ended in {len(seen)} different states")

    zero = best.get("stops 0%")
    reference = zero or plain
    print(
        f"placement {args.stops:,} stops: "
        + ", ".join(
            f"{args.stops / best[name].placed_seconds:,.0f}/s ({name})" for name, stops in plans if stops
        )
    )
    print()
    header = (
        f"{'run':<11}{'commands/s':>11}{'vs plain':>9}{'trades':>8}{'rejects':>8}{'triggered':>10}"
        f"{'share':>7}{'cmds':>6}{'max/cmd':>8}{'rounds':>7}{'multi':>6}{'cascaded':>9}"
        f"{'when p10/p50/p90':>20}{'us/triggered':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, stops in plans:
        result = best[name]
        rate = n / result.seconds
        line = f"{name:<11}{rate:>11,.0f}{rate / (n / plain.seconds):>9.1%}{result.trades:>8,}{result.rejects:>8,}"
        if stops:
            stats = analyse(result, stops)
            when = sorted(stats.when)
            spread = (
                "/".join(f"{when[min(len(when) - 1, int(q * len(when)))]:,}" for q in (0.1, 0.5, 0.9))
                if when
                else "-"
            )
            extra = (
                f"{(result.seconds - reference.seconds) / stats.orders * 1e6:,.0f}"
                if stats.orders and result is not reference
                else "-"
            )
            line += (
                f"{stats.orders:>10,}{stats.orders / len(stops):>7.1%}{stats.commands:>6,}"
                f"{stats.max_per_command:>8,}{stats.rounds_max:>7}{stats.multi_round_commands:>6,}"
                f"{stats.cascaded:>9,}{spread:>20}{extra:>13}"
            )
        print(line)
    print()
    print(
        f"commands/s: best of {args.repeat} (process CPU time, timed mix only). rejects: cancels of mix "
        "orders that triggered stops filled first. cmds: commands that triggered any stop; max/cmd: "
        "most stops one command triggered; rounds: most cascade rounds in one command; multi: commands "
        "with more than one round; cascaded: stops triggered in round >= 2; when: command index in the "
        f"timed mix. us/triggered: extra CPU per triggered stop against {(reference is zero and 'stops 0%') or 'plain'} "
        "(its own matching and settlement included). Checks passed: plain = bare-loop trades, one state "
        "hash per configuration, check_invariants, triggered counts by trigger log / outcomes / status."
    )

    if args.profile:
        for name, stops in plans[:2]:
            core, seq, _, _ = setup(stops, commands[len(stops)][: args.warmup], last)
            timed = commands[len(stops)][args.warmup :]

            def replay(core: ExchangeCore = core, seq: int = seq, timed: list[Command] = timed) -> None:
                for i, command in enumerate(timed, start=1):
                    core.apply(command, seq + i, seq + i)
                    if i % TAKE_CHANGES_EVERY == 0:
                        core.take_changes()

            profiler = cProfile.Profile()
            profiler.runcall(replay)
            print(f"\n---- cProfile, {name}: top 20 by own time")
            pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
