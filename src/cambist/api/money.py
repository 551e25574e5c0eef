"""Decimal strings ⇄ integer units at the API edge, with the contract's error codes."""

from __future__ import annotations

from cambist.api.errors import bad_request
from cambist.core.numbers import DecimalFormatError, format_units, parse_units


def parse_money(value: object, scale: int, field: str, code: str) -> int:
    """Strictly parse a money field; any defect is a 400 with ``code``, nothing is rounded."""
    if not isinstance(value, str):
        raise bad_request(code, f'{field} must be a decimal string such as "1.5"')
    try:
        units = parse_units(value, scale)
    except DecimalFormatError as error:
        raise bad_request(code, f"{field} {error}") from None
    if units == 0:
        raise bad_request(code, f"{field} must be greater than zero")
    return units


def parse_optional(value: str | None, scale: int, field: str, code: str) -> int | None:
    return None if value is None else parse_money(value, scale, field, code)


def fmt(units: int, scale: int) -> str:
    return format_units(units, scale)


def fmt_optional(units: int | None, scale: int) -> str | None:
    return None if units is None else format_units(units, scale)
