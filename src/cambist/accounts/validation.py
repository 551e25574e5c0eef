"""Checks on what users type: emails, API-key labels and IP allowlists."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from cambist.accounts.errors import InvalidInput

EMAIL_LENGTH_MAX = 254  # RFC 5321 path limit
LABEL_LENGTH_MAX = 64
IP_ALLOWLIST_ENTRIES_MAX = 32

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Deliberately plain: a local part of common characters, and a domain of dot-separated labels
# ending in a TLD of letters. Exotic but valid addresses (quoted local parts, IP literals) are
# refused; the address is confirmed by mail, not by this pattern.
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def normalize_email(email: str) -> str:
    """Lower-case a valid address; raise ``InvalidInput(INVALID_EMAIL)`` otherwise."""
    if not isinstance(email, str):
        raise InvalidInput("invalid email address", code="INVALID_EMAIL")
    email = email.strip().lower()
    if (
        len(email) > EMAIL_LENGTH_MAX
        or not email.isascii()
        or not _EMAIL_RE.fullmatch(email)
        or ".." in email
        or email.startswith(".")
        or ".@" in email
    ):
        raise InvalidInput("invalid email address", code="INVALID_EMAIL")
    return email


def validate_label(label: str) -> str:
    if not isinstance(label, str) or len(label) > LABEL_LENGTH_MAX:
        raise InvalidInput(
            f"the label must be text of at most {LABEL_LENGTH_MAX} characters",
            code="INVALID_LABEL",
        )
    if any(not ch.isprintable() for ch in label):
        raise InvalidInput("the label must not contain control characters", code="INVALID_LABEL")
    return label


def parse_ip_allowlist(entries: Iterable[str] | None) -> tuple[IPNetwork, ...]:
    """Parse IPs and CIDRs; empty or None means no restriction.

    ``10.0.0.5/24`` (host bits set) is refused rather than widened: it is most likely a typo,
    and silently allowing the whole /24 would grant more than was asked.
    """
    if entries is None:
        return ()
    if isinstance(entries, str):
        raise InvalidInput("ipAllowlist must be a list", code="INVALID_IP_ALLOWLIST")
    networks: list[IPNetwork] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise InvalidInput("ipAllowlist entries must be text", code="INVALID_IP_ALLOWLIST")
        try:
            network = ipaddress.ip_network(entry.strip(), strict=True)
        except ValueError:
            raise InvalidInput(
                f"{entry!r} is not an IP address or CIDR block", code="INVALID_IP_ALLOWLIST"
            ) from None
        if network not in networks:
            networks.append(network)
        if len(networks) > IP_ALLOWLIST_ENTRIES_MAX:
            raise InvalidInput(
                f"at most {IP_ALLOWLIST_ENTRIES_MAX} allowlist entries",
                code="INVALID_IP_ALLOWLIST",
            )
    return tuple(networks)


def join_ip_allowlist(networks: Iterable[IPNetwork]) -> str | None:
    text = ",".join(str(n) for n in networks)
    return text or None


def split_ip_allowlist(text: str | None) -> tuple[IPNetwork, ...]:
    if not text:
        return ()
    return tuple(ipaddress.ip_network(part) for part in text.split(","))


def ip_allowed(client_ip: str | None, allowlist: tuple[IPNetwork, ...]) -> bool:
    """True when there is no allowlist or ``client_ip`` falls in one of its networks."""
    if not allowlist:
        return True
    if not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip.strip())
    except ValueError:
        return False
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; match them as IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allowlist)
