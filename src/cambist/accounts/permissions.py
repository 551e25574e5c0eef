"""Who is calling and what they may do: roles of people, permissions of API keys.

A ``Principal`` is what authentication produces. A person logged in with a JWT holds every
permission; a program holding an API key holds only the key's permissions, and only the
``user`` role (administration needs an interactive login, never a key that could leak into a
bot's config file).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cambist.accounts.errors import Forbidden, InvalidInput


class Permission(StrEnum):
    READ = "read"
    TRADE = "trade"
    WITHDRAW = "withdraw"


class Role(StrEnum):
    USER = "user"
    SUPPORT = "support"
    ADMIN = "admin"


ALL_PERMISSIONS: frozenset[Permission] = frozenset(Permission)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    roles: frozenset[Role]
    session_id: str | None
    permissions: frozenset[Permission] = ALL_PERMISSIONS
    api_key_id: str | None = None

    @property
    def via_api_key(self) -> bool:
        return self.api_key_id is not None

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"this API key lacks the '{permission.value}' permission")

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    def require_role(self, role: Role) -> None:
        # Exact membership, no implied hierarchy: an admin who should also act as support is
        # given both roles explicitly.
        if role not in self.roles:
            raise Forbidden(f"the '{role.value}' role is required")

    def require_any_role(self, *roles: Role) -> None:
        if not self.roles.intersection(roles):
            names = ", ".join(r.value for r in roles)
            raise Forbidden(f"one of these roles is required: {names}")

    def require_session(self) -> None:
        """Refuse API keys: managing keys, sessions or security settings needs a login, so a
        trade-only key can never widen its own permissions."""
        if self.api_key_id is not None:
            raise Forbidden("this action needs a logged-in session, not an API key")


def parse_permissions(values: Iterable[str]) -> frozenset[Permission]:
    """Validate a non-empty subset of read/trade/withdraw (duplicates are harmless)."""
    if isinstance(values, str):  # a bare string would iterate by character
        raise InvalidInput("permissions must be a list", code="INVALID_PERMISSIONS")
    found: set[Permission] = set()
    for value in values:
        try:
            found.add(Permission(value))
        except ValueError:
            raise InvalidInput(
                f"unknown permission {value!r}; use read, trade or withdraw",
                code="INVALID_PERMISSIONS",
            ) from None
    if not found:
        raise InvalidInput("at least one permission is required", code="INVALID_PERMISSIONS")
    return frozenset(found)


def parse_roles(values: Iterable[str]) -> frozenset[Role]:
    """Validate roles; every account has the ``user`` role whatever else it holds."""
    if isinstance(values, str):
        raise InvalidInput("roles must be a list", code="INVALID_ROLES")
    found: set[Role] = {Role.USER}
    for value in values:
        try:
            found.add(Role(value))
        except ValueError:
            raise InvalidInput(f"unknown role {value!r}", code="INVALID_ROLES") from None
    return frozenset(found)


# Stored as comma lists in a fixed order, so equal sets give equal strings.
def join_permissions(permissions: Iterable[Permission]) -> str:
    chosen = set(permissions)
    return ",".join(p.value for p in Permission if p in chosen)


def split_permissions(text: str) -> frozenset[Permission]:
    return frozenset(Permission(p) for p in text.split(",") if p)


def join_roles(roles: Iterable[Role]) -> str:
    chosen = set(roles)
    return ",".join(r.value for r in Role if r in chosen)


def split_roles(text: str) -> frozenset[Role]:
    # An unknown stored role (written by a newer version) is ignored rather than granted.
    return frozenset(Role(r) for r in text.split(",") if r in _ROLE_VALUES)


_ROLE_VALUES = frozenset(r.value for r in Role)
