"""DemoLiquidity against a real core: two-sided books, trades, invariants, bounded orders."""

from __future__ import annotations

import asyncio
import random

import pytest

from cambist.core.checks import check_invariants
from cambist.core.commands import CancelAllOrders, Command, Credit, PlaceOrder, UpsertMarket
from cambist.core.events import Outcome
from cambist.core.types import MarketStatus, OrderType, RejectCode, Side
from cambist.demo.market_maker import EXPECTED_REJECTS, DemoLiquidity, DemoTuning, _grid_step
from cambist.engine.engine import EngineUnavailable

from .support import CoreHarness

MAKER = 101
TAKER = 102
LEVELS = 10
SYMBOLS = ("BTC-USDT", "ETH-BTC", "ETH-USDT")


def make_bot(harness: CoreHarness, seed: int = 7, **kwargs: object) -> DemoLiquidity:
    kwargs.setdefault("tuning", DemoTuning(backoff_s_min=0.0, backoff_s_max=0.0))
    kwargs.setdefault("run_id", "test")
    return DemoLiquidity(
        execute=harness.execute,
        markets=harness.markets,
        assets=harness.assets,
        maker_account=MAKER,
        taker_account=TAKER,
        rng=random.Random(seed),
        levels_per_side=LEVELS,
        refresh_interval_s=0.0,
        taker_probability=0.7,
        **kwargs,  # type: ignore[arg-type]
    )


def assert_healthy(harness: CoreHarness, symbols: tuple[str, ...] = SYMBOLS) -> None:
    for symbol in symbols:
        bids, asks = harness.core.depth(symbol, LEVELS + 1)
        assert bids and asks, f"{symbol} is one-sided: {len(bids)} bids, {len(asks)} asks"
    assert harness.open_orders(MAKER) <= 2 * LEVELS * len(symbols)
    assert harness.open_orders(TAKER) == 0  # the taker never rests anything
    check_invariants(harness.core)


async def test_hundreds_of_rounds_keep_books_two_sided_and_the_core_sound() -> None:
    harness = CoreHarness()
    bot = make_bot(harness)
    for _ in range(300):
        await bot.step()
        assert_healthy(harness)
        assert bot.open_orders == harness.open_orders(MAKER)
    traded = {trade.symbol for trade in harness.trades}
    assert traded == set(SYMBOLS)
    assert bot.trades == len(harness.trades) > 100
    assert not bot.rejects, bot.rejects  # alone on the exchange the bot gets no reject at all
    for symbol in SYMBOLS:
        bids, asks = harness.core.depth(symbol, LEVELS + 1)
        assert len(bids) == len(asks) == LEVELS
    # Both accounts were funded once each per asset at start and never ran low.
    credits = [c for c, _ in harness.log if isinstance(c, Credit)]
    assert sorted((c.account_id, c.asset) for c in credits) == sorted(
        (account, asset) for account in (MAKER, TAKER) for asset in ("BTC", "ETH", "USDT")
    )


async def test_prices_start_at_the_references_and_stay_bounded() -> None:
    harness = CoreHarness()
    bot = make_bot(harness)
    await bot.step()
    start = {symbol: mid(harness, symbol) for symbol in SYMBOLS}
    assert abs(start["BTC-USDT"] - 65_000_000_000) < 65_000_000_000 * 0.002  # USDT: 6 decimals
    assert abs(start["ETH-USDT"] - 3_200_000_000) < 3_200_000_000 * 0.002
    assert abs(start["ETH-BTC"] - 4_923_077) < 4_923_077 * 0.003  # 3200 / 65000 BTC: 8 decimals
    seen: set[int] = set()
    for _ in range(400):
        await bot.step()
        price = mid(harness, "BTC-USDT")
        seen.add(price)
        assert abs(price - 65_000_000_000) <= 65_000_000_000 * 0.1 + 1
    assert len(seen) > 50  # the price walks, candles have something to show


def mid(harness: CoreHarness, symbol: str) -> int:
    bids, asks = harness.core.depth(symbol, 1)
    return (bids[0][0] + asks[0][0]) // 2


async def test_every_order_is_on_the_tick_and_lot_and_above_the_minimums() -> None:
    harness = CoreHarness()
    bot = make_bot(harness)
    for _ in range(50):
        await bot.step()
    markets = {m.symbol: m for m in harness.markets()}
    places = [(c, o) for c, o in harness.log if isinstance(c, PlaceOrder)]
    assert places
    for command, outcome in places:
        assert outcome.reject is None
        market = markets[command.symbol]
        if command.price is not None:
            assert command.price % market.tick_size == 0
        if command.quantity is not None:
            assert command.quantity % market.lot_size == 0 and command.quantity >= market.min_quantity
        if command.account_id == MAKER:
            assert command.post_only and command.order_type is OrderType.LIMIT
    taker = [c for c, _ in places if c.account_id == TAKER]
    kinds = {(c.order_type, c.quote_quantity is not None, c.time_in_force) for c in taker}
    assert len(kinds) == 3  # market by quantity, market by quote, IOC limit


async def test_the_same_seed_gives_the_same_exchange_state() -> None:
    hashes = []
    for _ in range(2):
        harness = CoreHarness()
        bot = make_bot(harness, seed=42)
        for _ in range(60):
            await bot.step()
        hashes.append(harness.core.state_hash())
    assert hashes[0] == hashes[1]


async def test_a_restart_cancels_the_previous_runs_orders() -> None:
    harness = CoreHarness()
    first = make_bot(harness)
    for _ in range(5):
        await first.step()
    before = harness.open_orders(MAKER)
    assert before > 0
    # A new process knows nothing of the old orders; its run id (wall clock by default) differs.
    second = make_bot(harness, seed=8, run_id="test-restarted")
    for _ in range(5):
        await second.step()
        assert_healthy(harness)
    assert harness.open_orders(MAKER) == second.open_orders <= 2 * LEVELS * len(SYMBOLS)
    credits = [c for c, _ in harness.log if isinstance(c, Credit)]
    assert len({c.credit_id for c in credits}) == len(credits)
    # The resync's outcomes showed the maker still funded; the taker's balances it had not seen.
    restarted = [(c.account_id, c.asset) for c in credits if "restarted" in c.credit_id]
    assert restarted == [(TAKER, "BTC"), (TAKER, "ETH"), (TAKER, "USDT")]


async def test_a_user_sweeping_the_book_is_noticed_and_funds_are_topped_up() -> None:
    """Fills the bot never saw: its books heal and the maker is re-credited when it runs low."""
    harness = CoreHarness()
    small = DemoTuning(backoff_s_min=0.0, backoff_s_max=0.0, topup_usd=20_000, level_usd=(50, 200))
    bot = make_bot(harness, tuning=small)
    user = 555
    harness.apply(Credit(credit_id="u-usdt", account_id=user, asset="USDT", amount=10**15, reason="t"))
    harness.apply(Credit(credit_id="u-btc", account_id=user, asset="BTC", amount=10**12, reason="t"))
    for round_number in range(200):
        await bot.step()
        assert_healthy(harness)
        if round_number % 4 == 3:  # sweep every demo level on both sides of BTC-USDT
            for side in (Side.BUY, Side.SELL):
                harness.apply(
                    PlaceOrder(
                        account_id=user,
                        symbol="BTC-USDT",
                        side=side,
                        order_type=OrderType.MARKET,
                        quantity=10**8,  # 1 BTC: more than the whole demo side
                    )
                )
            bids, asks = harness.core.depth("BTC-USDT", 1)
            assert not bids and not asks
    credits = [c for c, _ in harness.log if isinstance(c, Credit) and c.account_id == MAKER]
    assert len(credits) > 3  # topped up again after the sweeps drained it
    ids = [c.credit_id for c in credits]
    assert len(ids) == len(set(ids))
    assert set(bot.rejects) == {RejectCode.ORDER_NOT_FOUND}  # canceling orders the user had filled
    # Healed by replacing suspect orders, not by wiping the books: only the start-up resync ran.
    assert sum(isinstance(c, CancelAllOrders) for c, _ in harness.log) == len(SYMBOLS)


async def test_halted_and_unpriceable_markets_are_left_alone() -> None:
    harness = CoreHarness()
    bot = make_bot(harness)
    for _ in range(3):
        await bot.step()
    eth_btc = next(m for m in harness.markets() if m.symbol == "ETH-BTC")
    halted = UpsertMarket(
        symbol="ETH-BTC",
        base_asset="ETH",
        quote_asset="BTC",
        tick_size=eth_btc.tick_size,
        lot_size=eth_btc.lot_size,
        min_quantity=eth_btc.min_quantity,
        min_notional=eth_btc.min_notional,
        maker_fee_ppm=eth_btc.maker_fee_ppm,
        taker_fee_ppm=eth_btc.taker_fee_ppm,
        status=MarketStatus.HALTED,
    )
    assert harness.apply(halted).reject is None
    for _ in range(5):
        await bot.step()
        assert_healthy(harness, ("BTC-USDT", "ETH-USDT"))
    assert harness.core.depth("ETH-BTC", 5) == ([], [])  # its orders were canceled, none placed
    assert not bot.rejects


async def test_run_backs_off_while_the_engine_is_unavailable_and_stop_clears_the_books() -> None:
    harness = CoreHarness()
    calls = 0

    async def flaky(command: Command) -> Outcome:
        nonlocal calls
        calls += 1
        if 200 <= calls < 260 or calls % 97 == 0:
            raise EngineUnavailable("recovering")
        return harness.apply(command)

    bot = DemoLiquidity(
        execute=flaky,
        markets=harness.markets,
        assets=harness.assets,
        maker_account=MAKER,
        taker_account=TAKER,
        rng=random.Random(3),
        refresh_interval_s=0.0,
        tuning=DemoTuning(backoff_s_min=0.0, backoff_s_max=0.0),
        run_id="flaky",
    )
    task = asyncio.create_task(bot.run())
    while bot.rounds < 40:
        await asyncio.sleep(0)
        assert not task.done()
    await bot.stop()
    assert task.done()
    assert harness.open_orders(MAKER) == 0  # stop took the quotes off
    assert harness.trades
    check_invariants(harness.core)
    assert set(bot.rejects) <= EXPECTED_REJECTS, bot.rejects


async def test_a_maker_order_the_bot_never_saw_is_found_and_canceled() -> None:
    """E.g. a command applied whose answer was lost: more is locked than the bot's orders hold."""
    harness = CoreHarness()
    bot = make_bot(harness)
    for _ in range(3):
        await bot.step()
    unknown = harness.apply(
        PlaceOrder(
            account_id=MAKER,
            symbol="ETH-USDT",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=10_000_000,  # 0.1 ETH
            price=1_000_000_000,  # 1000 USDT, far under the ladder
        )
    )
    assert unknown.order is not None and unknown.order.order_id in harness.core.orders
    await bot.step()  # notices the surplus lock; the next round starts with a resync
    for _ in range(3):
        await bot.step()
        assert_healthy(harness)
    assert unknown.order.order_id not in harness.core.orders
    assert harness.open_orders(MAKER) == bot.open_orders
    assert not bot.rejects


def test_accounts_must_differ() -> None:
    harness = CoreHarness()
    with pytest.raises(ValueError):
        DemoLiquidity(harness.execute, harness.markets, harness.assets, MAKER, MAKER)


def test_grid_steps_are_round_numbers_of_ticks() -> None:
    assert _grid_step(13_000_000, 10_000) == 10_000_000  # BTC-USDT: 2 bps of 65000 -> 10 USDT
    assert _grid_step(640_000, 10_000) == 500_000  # ETH-USDT: 0.64 -> 0.5 USDT
    assert _grid_step(984, 1_000) == 1_000  # ETH-BTC: under a tick -> one tick
    assert _grid_step(25_000, 1_000) == 20_000


async def test_stop_ends_a_long_sleep_at_once() -> None:
    harness = CoreHarness()
    bot = DemoLiquidity(
        execute=harness.execute,
        markets=harness.markets,
        assets=harness.assets,
        maker_account=MAKER,
        taker_account=TAKER,
        rng=random.Random(5),
        refresh_interval_s=3600.0,
        run_id="sleepy",
    )
    task = asyncio.create_task(bot.run())
    while bot.rounds < 1:
        await asyncio.sleep(0)
    await asyncio.wait_for(bot.stop(), timeout=2.0)
    assert task.done()
    assert harness.open_orders(MAKER) == 0
