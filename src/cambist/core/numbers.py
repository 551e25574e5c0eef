"""Fixed-point money: decimal strings at the edges, integer units inside.

An amount of an asset with scale ``s`` is held as an integer count of ``10**-s`` units.
A market price is held in quote units per one whole base unit, so for a trade of ``q`` base
units at price ``p`` the quote amount is ``q * p // 10**base_scale``; markets are only
accepted when ``tick_size * lot_size`` is a multiple of ``10**base_scale`` so that division
is always exact and no trade ever rounds.
"""

from __future__ import annotations

# 2**62 leaves headroom under the signed 64-bit columns both databases store amounts in.
MAX_UNITS = 2**62
MAX_DECIMAL_TEXT = 40  # characters; longer strings are refused before any arithmetic
MAX_SCALE = 18


# Powers of ten as a table: ``10**n`` is typed as Any (n could be negative) and is slower.
POW10: tuple[int, ...] = tuple(10**n for n in range(MAX_DECIMAL_TEXT + 1))


class DecimalFormatError(ValueError):
    """The text is not a plain non-negative decimal with at most ``scale`` fraction digits."""


def _is_ascii_digits(text: str) -> bool:
    # str.isdigit() accepts non-ASCII digits such as '٣'; the contract refuses them.
    return text != "" and text.isascii() and text.isdigit()


def parse_units(text: str, scale: int) -> int:
    """Parse ``"123.45"`` into integer units of ``10**-scale``.

    Accepts only ASCII digits with at most one dot: no sign, exponent, blank, underscore or
    more fraction digits than ``scale``. Raises ``DecimalFormatError`` with a short reason.
    """
    if not isinstance(text, str):
        raise DecimalFormatError("must be a decimal string")
    if len(text) > MAX_DECIMAL_TEXT:
        raise DecimalFormatError("is too long")
    whole, dot, fraction = text.partition(".")
    if not _is_ascii_digits(whole) or (dot and not _is_ascii_digits(fraction)):
        raise DecimalFormatError('must be a plain decimal string such as "12.5"')
    if len(fraction) > scale:
        raise DecimalFormatError(f"has more than {scale} decimal places")
    units = int(whole) * POW10[scale] + (int(fraction) * POW10[scale - len(fraction)] if fraction else 0)
    if units >= MAX_UNITS:
        raise DecimalFormatError("is too large")
    return units


def format_units(units: int, scale: int) -> str:
    """Format integer units as a plain decimal string without exponent or trailing zeros."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    if scale == 0:
        return f"{sign}{units}"
    whole, fraction = divmod(units, POW10[scale])
    if fraction == 0:
        return f"{sign}{whole}"
    text = str(fraction).rjust(scale, "0").rstrip("0")
    return f"{sign}{whole}.{text}"


def fee_for(amount: int, rate_ppm: int) -> int:
    """Fee on ``amount`` at ``rate_ppm`` parts per million, rounded up (in the exchange's favour)."""
    return -(-amount * rate_ppm // 1_000_000)


def parse_rate_ppm(text: str) -> int:
    """Parse a fee rate such as ``"0.001"`` into parts per million (at most 6 decimals)."""
    return parse_units(text, 6)


def format_rate_ppm(ppm: int) -> str:
    return format_units(ppm, 6)
