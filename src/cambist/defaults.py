"""The reference data a fresh store starts with: default assets and markets, as core commands.

They go through the engine like any admin change (so they are journaled and replayed), and
are written here as the human decimal strings an operator would type, converted with the
same ``parse_units`` the API uses.

Why BTC-USDT has a lot of 0.0001 and not 0.00001: the core only accepts markets where
``tick x lot`` is a whole number of quote units, i.e. ``tick_units * lot_units`` is a
multiple of ``10**base_scale``. With USDT at 6 decimals (as on-chain) a 0.01 tick is
``10**4`` units, so the lot needs at least ``10**4`` BTC units (0.0001 BTC, about 6.5 USDT).
"""

from __future__ import annotations

from collections.abc import Mapping

from cambist.core.commands import AddAsset, Command, UpsertMarket
from cambist.core.numbers import parse_rate_ppm, parse_units

# Asset -> scale (decimal places of its smallest unit). USDT has 6 like the ERC-20 token,
# so deposits and withdrawals never need rounding.
DEFAULT_ASSETS: dict[str, int] = {"BTC": 8, "ETH": 8, "USDT": 6}

DEFAULT_MAKER_FEE = "0.001"  # 0.1 %
DEFAULT_TAKER_FEE = "0.001"


def market_command(
    symbol: str,
    *,
    tick: str = "0.01",
    lot: str,
    min_quantity: str | None = None,
    min_notional: str,
    maker_fee: str = DEFAULT_MAKER_FEE,
    taker_fee: str = DEFAULT_TAKER_FEE,
    scales: Mapping[str, int] = DEFAULT_ASSETS,
) -> UpsertMarket:
    """Build an ``UpsertMarket`` from decimal strings.

    ``tick`` and ``min_notional`` are in the quote asset, ``lot`` and ``min_quantity`` in the
    base asset (``min_quantity`` defaults to one lot), fees are rates (``"0.001"`` = 0.1 %).
    Raises ``KeyError`` for an asset missing from ``scales`` and ``DecimalFormatError`` for
    a value with more decimals than its asset has.
    """
    base, _, quote = symbol.partition("-")
    base_scale, quote_scale = scales[base], scales[quote]
    lot_units = parse_units(lot, base_scale)
    return UpsertMarket(
        symbol=symbol,
        base_asset=base,
        quote_asset=quote,
        tick_size=parse_units(tick, quote_scale),
        lot_size=lot_units,
        min_quantity=lot_units if min_quantity is None else parse_units(min_quantity, base_scale),
        min_notional=parse_units(min_notional, quote_scale),
        maker_fee_ppm=parse_rate_ppm(maker_fee),
        taker_fee_ppm=parse_rate_ppm(taker_fee),
    )


def default_markets() -> list[UpsertMarket]:
    return [
        # tick 10**4 USDT units x lot 10**4 sat = 10**8: exact (see the module docstring).
        market_command("BTC-USDT", tick="0.01", lot="0.0001", min_notional="5"),
        market_command("ETH-USDT", tick="0.01", lot="0.0001", min_notional="5"),
        # tick 10**3 sat x lot 10**5 ETH units (1e-8) = 10**8: exact. 0.0001 BTC is about 6.5 USDT.
        market_command("ETH-BTC", tick="0.00001", lot="0.001", min_notional="0.0001"),
    ]


def default_commands() -> list[Command]:
    """Assets first (markets refer to them), then markets; apply in this order."""
    commands: list[Command] = [AddAsset(asset=asset, scale=scale) for asset, scale in DEFAULT_ASSETS.items()]
    commands.extend(default_markets())
    return commands
