from __future__ import annotations

import pytest

from cambist.accounts import errors
from cambist.accounts.errors import AuthError, Forbidden, InvalidInput
from cambist.accounts.permissions import (
    ALL_PERMISSIONS,
    Permission,
    Principal,
    Role,
    join_permissions,
    join_roles,
    parse_permissions,
    parse_roles,
    split_permissions,
    split_roles,
)


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (errors.Unauthorized, 401, "UNAUTHORIZED"),
        (errors.TokenExpired, 401, "TOKEN_EXPIRED"),
        (errors.InvalidSignature, 401, "INVALID_SIGNATURE"),
        (errors.TimestampOutsideWindow, 401, "TIMESTAMP_OUTSIDE_WINDOW"),
        (errors.ReplayedRequest, 401, "REPLAYED_REQUEST"),
        (errors.InvalidCredentials, 401, "INVALID_CREDENTIALS"),
        (errors.RefreshTokenReused, 401, "REFRESH_TOKEN_REUSED"),
        (errors.Forbidden, 403, "FORBIDDEN"),
        (errors.NotFound, 404, "NOT_FOUND"),
        (errors.EmailTaken, 409, "EMAIL_TAKEN"),
        (errors.InvalidInput, 400, "INVALID_INPUT"),
        (errors.LimitExceeded, 422, "LIMIT_EXCEEDED"),
        (errors.ServiceUnavailable, 503, "SERVICE_UNAVAILABLE"),
    ],
)
def test_error_codes_and_statuses(cls: type[AuthError], status: int, code: str) -> None:
    error = cls()
    assert isinstance(error, AuthError)
    assert (error.status, error.code) == (status, code)
    assert error.message and str(error) == error.message
    assert code.isupper()


def test_specific_code_and_message() -> None:
    error = InvalidInput("bad email", code="INVALID_EMAIL")
    assert (error.status, error.code, error.message) == (400, "INVALID_EMAIL", "bad email")


def test_parse_permissions() -> None:
    assert parse_permissions(["read", "trade", "read"]) == {Permission.READ, Permission.TRADE}
    for bad in ([], ["admin"], ["READ"], "read"):
        with pytest.raises(InvalidInput) as caught:
            parse_permissions(bad)
        assert caught.value.code == "INVALID_PERMISSIONS"


def test_parse_roles_always_includes_user() -> None:
    assert parse_roles(["admin"]) == {Role.USER, Role.ADMIN}
    assert parse_roles([]) == {Role.USER}
    with pytest.raises(InvalidInput):
        parse_roles(["root"])


def test_comma_lists_round_trip_in_fixed_order() -> None:
    assert join_permissions([Permission.WITHDRAW, Permission.READ]) == "read,withdraw"
    assert split_permissions("read,withdraw") == {Permission.READ, Permission.WITHDRAW}
    assert join_roles([Role.ADMIN, Role.USER]) == "user,admin"
    assert split_roles("user,admin,unknown") == {Role.USER, Role.ADMIN}


def test_jwt_principal_holds_every_permission() -> None:
    principal = Principal(user_id=1, roles=frozenset({Role.USER}), session_id="s")
    assert principal.permissions == ALL_PERMISSIONS
    for permission in Permission:
        principal.require(permission)
    principal.require_session()
    assert not principal.via_api_key


def test_api_key_principal_holds_only_its_permissions() -> None:
    principal = Principal(
        user_id=1,
        roles=frozenset({Role.USER}),
        session_id=None,
        permissions=frozenset({Permission.READ, Permission.TRADE}),
        api_key_id="k",
    )
    principal.require(Permission.TRADE)
    with pytest.raises(Forbidden) as caught:
        principal.require(Permission.WITHDRAW)
    assert caught.value.status == 403 and caught.value.code == "FORBIDDEN"
    # A key cannot manage keys (and so cannot widen its own permissions).
    with pytest.raises(Forbidden):
        principal.require_session()


def test_roles() -> None:
    admin = Principal(user_id=1, roles=frozenset({Role.USER, Role.ADMIN}), session_id="s")
    admin.require_role(Role.ADMIN)
    admin.require_any_role(Role.SUPPORT, Role.ADMIN)
    with pytest.raises(Forbidden):
        admin.require_role(Role.SUPPORT)  # no implied hierarchy
    user = Principal(user_id=2, roles=frozenset({Role.USER}), session_id="s")
    with pytest.raises(Forbidden):
        user.require_role(Role.ADMIN)
    with pytest.raises(Forbidden):
        user.require_any_role(Role.SUPPORT, Role.ADMIN)
