"""Assets and markets: scales, market validation, runtime updates."""

from __future__ import annotations

import pytest

from cambist.core.commands import AddAsset, Credit, UpsertMarket
from cambist.core.events import AssetView
from cambist.core.exchange import ExchangeCore
from cambist.core.types import MarketStatus, RejectCode

from .support import Harness, make_harness


def fresh() -> Harness:
    return Harness(ExchangeCore(), 8)


def test_asset_scale_can_change_until_balances_or_markets_use_it() -> None:
    h = fresh()
    h.ok(AddAsset("BTC", 8))
    h.ok(AddAsset("BTC", 6))  # nothing uses it yet
    h.ok(AddAsset("BTC", 6))  # same scale again: a no-op
    assert h.core.assets == {"BTC": 6}
    h.ok(Credit("c1", 1, "BTC", 5, "test"))
    assert h.apply(AddAsset("BTC", 8)).reject is RejectCode.ASSET_SCALE_LOCKED
    h.ok(AddAsset("BTC", 6))  # restating the locked scale is fine
    assert h.core.assets == {"BTC": 6}


def test_asset_scale_is_locked_once_a_market_uses_it() -> None:
    h = fresh()
    h.ok(AddAsset("ETH", 8))
    h.ok(AddAsset("USDC", 6))
    h.ok(UpsertMarket("ETH-USDC", "ETH", "USDC", 10**4, 10**4, 10**4, 0, 0, 0))
    assert h.apply(AddAsset("USDC", 8)).reject is RejectCode.ASSET_SCALE_LOCKED
    assert h.apply(AddAsset("ETH", 18)).reject is RejectCode.ASSET_SCALE_LOCKED


@pytest.mark.parametrize(
    ("base_scale", "tick", "lot", "ok"),
    [
        (8, 10**6, 10**2, True),  # 10**8: exactly one quote unit
        (8, 10**6, 10**4, True),
        (8, 3 * 10**6, 10**2, True),  # three quote units
        (8, 10**6, 10, False),  # 10**7 / 10**8 of a quote unit
        (8, 1, 1, False),
        (8, 5 * 10**5, 10**2, False),  # half a quote unit
        (0, 1, 1, True),  # an indivisible base: every price x quantity is whole
        (2, 25, 4, True),
        (2, 25, 2, False),
    ],
)
def test_market_tick_times_lot_must_be_a_whole_number_of_quote_units(
    base_scale: int, tick: int, lot: int, ok: bool
) -> None:
    h = fresh()
    h.ok(AddAsset("BASE", base_scale))
    h.ok(AddAsset("QUOTE", 2))
    out = h.apply(UpsertMarket("BASE-QUOTE", "BASE", "QUOTE", tick, lot, lot, 0, 0, 0))
    assert (out.reject is None) is ok
    if not ok:
        assert out.reject is RejectCode.INVALID_MARKET and "BASE-QUOTE" not in h.core.markets


def test_market_update_changes_parameters_and_reports_the_market_and_asset_changes() -> None:
    h = fresh()
    h.ok(AddAsset("BTC", 8))
    h.ok(AddAsset("USDT", 6))
    changes = h.changes()
    assert changes.assets == [AssetView("BTC", 8), AssetView("USDT", 6)]
    h.ok(UpsertMarket("BTC-USDT", "BTC", "USDT", 10**4, 10**4, 10**4, 0, 1000, 2000))
    h.ok(UpsertMarket("BTC-USDT", "BTC", "USDT", 10**4, 10**4, 10**4, 0, 500, 700, MarketStatus.HALTED))
    (view,) = h.changes().markets
    assert (view.maker_fee_ppm, view.taker_fee_ppm, view.status) == (500, 700, MarketStatus.HALTED)
    assert h.core.markets["BTC-USDT"].view == view


def test_a_rejected_market_update_keeps_the_old_parameters() -> None:
    h = make_harness()
    old = h.core.markets["BTC-USDT"].view
    assert h.upsert(taker_fee_ppm=200_000).reject is RejectCode.INVALID_MARKET
    assert h.core.markets["BTC-USDT"].view == old


def test_a_new_tick_size_never_leaves_resting_orders_off_tick() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    h.limit(1, "sell", "50000.01", "0.1")
    outcome = h.upsert(tick_size=h.usdt("1"))
    tick = h.core.markets["BTC-USDT"].view.tick_size
    assert outcome.reject is not None or all(
        o.price is not None and o.price % tick == 0 for o in h.core.orders.values()
    )
