"""Cambist values in Binance's shapes: numbers as plain decimal strings, the order types the
facade accepts, and the public bodies (exchangeInfo symbols, depth, trades, klines, tickers)."""

from __future__ import annotations

from cambist.core.numbers import format_units

# Every order type the facade accepts, in the order Binance lists them. ccxt's create_order
# refuses a type missing here (binance-compat.md §2.1), so exchangeInfo and POST /order both
# read this one list. Stop types come with issue 6.
ORDER_TYPES: tuple[str, ...] = ("LIMIT", "LIMIT_MAKER", "MARKET")


def fmt(units: int, scale: int) -> str:
    """``units`` at ``scale`` decimals as a plain decimal string (no exponent), padded to
    ``scale`` decimals the way Binance prints numbers: ``fmt(150, 2) == "1.50"``."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    if scale <= 0:
        return f"{sign}{units * 10 ** (-scale)}"
    text = str(units).rjust(scale + 1, "0")
    return f"{sign}{text[:-scale]}.{text[-scale:]}"


__all__ = ["ORDER_TYPES", "fmt", "format_units"]
