"""Decimal strings at the edges, integer units inside (``cambist.core.numbers``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cambist.core.numbers import (
    MAX_DECIMAL_TEXT,
    MAX_SCALE,
    MAX_UNITS,
    DecimalFormatError,
    fee_for,
    format_rate_ppm,
    format_units,
    parse_rate_ppm,
    parse_units,
)


@pytest.mark.parametrize(
    ("text", "scale", "units"),
    [
        ("0", 8, 0),
        ("1", 8, 100_000_000),
        ("1.5", 8, 150_000_000),
        ("0.00000001", 8, 1),
        ("12.34", 2, 1234),
        ("007.50", 2, 750),  # leading zeros are harmless
        ("1.10000000", 8, 110_000_000),  # trailing zeros within the scale
        ("5", 0, 5),
        (str(MAX_UNITS - 1), 0, MAX_UNITS - 1),
    ],
)
def test_parse_accepts_plain_decimals(text: str, scale: int, units: int) -> None:
    assert parse_units(text, scale) == units


@pytest.mark.parametrize(
    "text",
    [
        "",  # blank
        " ",
        " 1",
        "1 ",
        "-1",  # sign
        "+1",
        "-0",
        "1e5",  # exponent
        "1E5",
        "1.5e-3",
        "1_000",  # underscore
        "1_000.5",
        "0.000_1",
        "١",  # Arabic-Indic digit one: str.isdigit() says yes, the contract says no
        "1.٥",
        "１",  # full-width digit
        "²",  # superscript two
        ".5",  # leading dot
        "5.",  # trailing dot
        ".",
        "1.2.3",
        "1,5",
        "NaN",
        "inf",
        "0x10",
    ],
)
def test_parse_refuses_anything_but_ascii_digits_and_one_dot(text: str) -> None:
    with pytest.raises(DecimalFormatError):
        parse_units(text, 8)


def test_parse_refuses_more_decimals_than_the_scale_even_trailing_zeros() -> None:
    with pytest.raises(DecimalFormatError, match="decimal places"):
        parse_units("0.000000001", 8)
    with pytest.raises(DecimalFormatError, match="decimal places"):
        parse_units("1.000000000", 8)
    with pytest.raises(DecimalFormatError, match="decimal places"):
        parse_units("5.0", 0)


def test_parse_refuses_too_large_and_too_long() -> None:
    with pytest.raises(DecimalFormatError, match="too large"):
        parse_units(str(MAX_UNITS), 0)
    with pytest.raises(DecimalFormatError, match="too large"):
        parse_units("46116860184.27387904", 8)  # exactly 2**62 units
    assert parse_units("46116860184.27387903", 8) == MAX_UNITS - 1
    with pytest.raises(DecimalFormatError, match="too long"):
        parse_units("1" * (MAX_DECIMAL_TEXT + 1), 0)
    with pytest.raises(DecimalFormatError, match="too long"):
        parse_units("0." + "0" * MAX_DECIMAL_TEXT, MAX_SCALE)


@pytest.mark.parametrize("value", [5, 5.0, None, b"5"])
def test_parse_refuses_non_strings(value: object) -> None:
    with pytest.raises(DecimalFormatError):
        parse_units(value, 8)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("units", "scale", "text"),
    [
        (0, 8, "0"),
        (1, 8, "0.00000001"),
        (150_000_000, 8, "1.5"),
        (100_000_000, 8, "1"),
        (123_456_789, 8, "1.23456789"),
        (-5, 8, "-0.00000005"),
        (-150_000_000, 8, "-1.5"),
        (42, 0, "42"),
        (-42, 0, "-42"),
    ],
)
def test_format_is_plain_without_trailing_zeros(units: int, scale: int, text: str) -> None:
    assert format_units(units, scale) == text


@given(st.integers(min_value=0, max_value=MAX_UNITS - 1), st.integers(min_value=0, max_value=MAX_SCALE))
def test_format_then_parse_round_trips(units: int, scale: int) -> None:
    text = format_units(units, scale)
    assert "e" not in text.lower()
    assert parse_units(text, scale) == units


@pytest.mark.parametrize(
    ("amount", "ppm", "fee"),
    [
        (0, 1000, 0),
        (1, 1000, 1),  # the smallest unit still pays one unit: rounding is up
        (999, 1000, 1),
        (1000, 1000, 1),
        (1001, 1000, 2),
        (1_000_000, 2500, 2500),
        (12345, 0, 0),
    ],
)
def test_fee_rounds_up(amount: int, ppm: int, fee: int) -> None:
    assert fee_for(amount, ppm) == fee


@given(st.integers(min_value=0, max_value=MAX_UNITS - 1), st.integers(min_value=0, max_value=1_000_000))
def test_fee_is_never_below_the_exact_fee_nor_above_the_amount(amount: int, ppm: int) -> None:
    fee = fee_for(amount, ppm)
    assert fee * 1_000_000 >= amount * ppm  # never in the payer's favour
    assert (fee - 1) * 1_000_000 < amount * ppm  # by less than one unit
    assert 0 <= fee <= amount


def test_rates_are_parts_per_million() -> None:
    assert parse_rate_ppm("0.001") == 1000
    assert parse_rate_ppm("0") == 0
    assert format_rate_ppm(2500) == "0.0025"
    with pytest.raises(DecimalFormatError):
        parse_rate_ppm("0.0000001")
