from __future__ import annotations

import pytest

from cambist.accounts.errors import InvalidInput
from cambist.accounts.validation import (
    ip_allowed,
    join_ip_allowlist,
    normalize_email,
    parse_ip_allowlist,
    split_ip_allowlist,
    validate_label,
)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("  bob+tag@mail.example.org ", "bob+tag@mail.example.org"),
        ("o'neil@example.ie", "o'neil@example.ie"),
    ],
)
def test_emails_accepted_and_lower_cased(given: str, stored: str) -> None:
    assert normalize_email(given) == stored


@pytest.mark.parametrize(
    "email",
    [
        "",
        "plain",
        "@example.com",
        "a@",
        "a@b",
        "a@example.c",
        "a b@example.com",
        "a@exa mple.com",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@-example.com",
        "a@example..com",
        "ü@example.com",
        "a@exam\nple.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_emails_refused(email: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_email(email)
    assert caught.value.code == "INVALID_EMAIL"


def test_label() -> None:
    assert validate_label("") == ""
    assert validate_label("bot " * 16) == "bot " * 16
    for bad in ("x" * 65, "tab\there"):
        with pytest.raises(InvalidInput) as caught:
            validate_label(bad)
        assert caught.value.code == "INVALID_LABEL"


def test_ip_allowlist_parsing() -> None:
    networks = parse_ip_allowlist(["203.0.113.7", "10.0.0.0/8", "2001:db8::/32", "203.0.113.7"])
    text = join_ip_allowlist(networks)
    assert text == "203.0.113.7/32,10.0.0.0/8,2001:db8::/32"
    assert split_ip_allowlist(text) == networks
    assert parse_ip_allowlist(None) == () and parse_ip_allowlist([]) == ()
    assert join_ip_allowlist(()) is None


@pytest.mark.parametrize(
    "entries",
    [
        ["not an ip"],
        ["10.0.0.5/24"],
        ["300.1.1.1"],
        ["10.0.0.0/33"],
        "10.0.0.1",
        ["1.1.1.1"] * 0 + [f"10.0.0.{i}" for i in range(40)],
    ],
)
def test_ip_allowlist_refused(entries: list[str]) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_ip_allowlist(entries)
    assert caught.value.code == "INVALID_IP_ALLOWLIST"


def test_ip_allowed() -> None:
    allowlist = parse_ip_allowlist(["203.0.113.7", "10.0.0.0/8", "2001:db8::/32"])
    assert ip_allowed("203.0.113.7", allowlist)
    assert ip_allowed("10.20.30.40", allowlist)
    assert ip_allowed("2001:db8::1", allowlist)
    assert ip_allowed("::ffff:10.1.2.3", allowlist)  # IPv4 seen through a dual-stack socket
    assert not ip_allowed("203.0.113.8", allowlist)
    assert not ip_allowed(None, allowlist)
    assert not ip_allowed("garbage", allowlist)
    assert ip_allowed(None, ())  # no allowlist, no restriction
