"""Immutable values the account services return; no ORM object ever leaves this package."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cambist.accounts.permissions import Permission, Role


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds until the access token expires
    session_id: str
    token_type: str = "Bearer"


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    email: str
    roles: frozenset[Role]
    status: UserStatus
    created_at: int


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    created_at: int
    expires_at: int
    last_used_at: int
    ip: str | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What may be shown about a key; the secret is never part of it."""

    id: str
    label: str
    permissions: frozenset[Permission]
    ip_allowlist: tuple[str, ...]  # normalized CIDRs, empty for no restriction
    created_at: int
    last_used_at: int | None
