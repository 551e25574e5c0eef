"""The default reference data is valid for the core and means what its decimal strings say."""

from __future__ import annotations

import pytest

from cambist.core.checks import check_invariants
from cambist.core.commands import AddAsset, UpsertMarket
from cambist.core.exchange import ExchangeCore
from cambist.core.numbers import POW10, DecimalFormatError
from cambist.defaults import DEFAULT_ASSETS, default_commands, market_command


def test_every_default_command_is_accepted_by_a_fresh_core() -> None:
    core = ExchangeCore()
    for seq, command in enumerate(default_commands(), start=1):
        outcome = core.apply(command, seq, 1_700_000_000_000)
        assert outcome.reject is None, (command, outcome.reject, outcome.message)
    assert core.assets == {"BTC": 8, "ETH": 8, "USDT": 6}
    assert sorted(core.markets) == ["BTC-USDT", "ETH-BTC", "ETH-USDT"]
    check_invariants(core)


def test_assets_come_before_markets() -> None:
    kinds = [type(command) for command in default_commands()]
    first_market = kinds.index(UpsertMarket)
    assert all(kind is AddAsset for kind in kinds[:first_market])
    assert all(kind is UpsertMarket for kind in kinds[first_market:])


def test_default_markets_keep_trade_amounts_exact() -> None:
    for command in default_commands():
        if isinstance(command, UpsertMarket):
            base_unit = POW10[DEFAULT_ASSETS[command.base_asset]]
            assert command.tick_size * command.lot_size % base_unit == 0, command.symbol
            assert command.min_quantity == command.lot_size
            assert (command.maker_fee_ppm, command.taker_fee_ppm) == (1000, 1000)


def test_btc_usdt_in_units() -> None:
    markets = {c.symbol: c for c in default_commands() if isinstance(c, UpsertMarket)}
    btc = markets["BTC-USDT"]
    assert btc.tick_size == 10_000  # 0.01 USDT at 6 decimals
    assert btc.lot_size == 10_000  # 0.0001 BTC at 8 decimals
    assert btc.min_notional == 5_000_000  # 5 USDT
    eth_btc = markets["ETH-BTC"]
    assert (eth_btc.tick_size, eth_btc.lot_size, eth_btc.min_notional) == (1_000, 100_000, 10_000)


def test_market_command_converts_with_the_asset_scales() -> None:
    command = market_command(
        "ETH-USDT", tick="0.1", lot="0.01", min_quantity="0.02", min_notional="10", maker_fee="0.0005"
    )
    assert (command.base_asset, command.quote_asset) == ("ETH", "USDT")
    assert (command.tick_size, command.lot_size, command.min_quantity) == (100_000, 1_000_000, 2_000_000)
    assert (command.min_notional, command.maker_fee_ppm, command.taker_fee_ppm) == (10_000_000, 500, 1000)


def test_the_too_fine_btc_lot_would_be_refused_by_the_core() -> None:
    """Why BTC-USDT's lot is 0.0001: 0.00001 with a 0.01 tick breaks the exactness rule."""
    core = ExchangeCore()
    for seq, command in enumerate(default_commands(), start=1):
        core.apply(command, seq, 0)
    too_fine = market_command("BTC-USDT", lot="0.00001", min_notional="5")
    outcome = core.apply(too_fine, core.last_seq + 1, 0)
    assert outcome.reject == "INVALID_MARKET"


def test_market_command_refuses_more_decimals_than_the_asset_has() -> None:
    with pytest.raises(DecimalFormatError):
        market_command("BTC-USDT", tick="0.0000001", lot="0.0001", min_notional="5")
