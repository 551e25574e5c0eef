"""Registration, login, access tokens, refresh rotation and sessions through AccountService."""

from __future__ import annotations

import jwt
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as DbSession

from cambist.accounts.errors import (
    EmailTaken,
    Forbidden,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    RefreshTokenReused,
    TokenExpired,
    Unauthorized,
)
from cambist.accounts.permissions import ALL_PERMISSIONS, Role
from cambist.accounts.records import UserStatus
from cambist.accounts.service import SESSIONS_PER_USER_MAX, AccountService
from cambist.store.models_accounts import RefreshToken, User, UserSession

from .support import ACCESS_TTL_S, REFRESH_TTL_S, FakeClock, make_service

EMAIL = "alice@example.com"
PASSWORD = "correct horse battery"


def _set_status(engine: Engine, user_id: int, status: str) -> None:
    with DbSession(engine) as db, db.begin():
        db.execute(update(User).where(User.id == user_id).values(status=status))


# -- registration -------------------------------------------------------------------------


def test_register_returns_ids_from_one(service: AccountService) -> None:
    assert service.register(EMAIL, PASSWORD) == 1
    assert service.register("bob@example.com", PASSWORD) == 2
    user = service.get_user(1)
    assert (user.email, user.roles, user.status) == (EMAIL, {Role.USER}, UserStatus.ACTIVE)


def test_register_duplicate_email_whatever_its_case(service: AccountService) -> None:
    service.register(EMAIL, PASSWORD)
    with pytest.raises(EmailTaken) as caught:
        service.register("  ALICE@example.com", "another password")
    assert (caught.value.status, caught.value.code) == (409, "EMAIL_TAKEN")


def test_register_validates(service: AccountService) -> None:
    with pytest.raises(InvalidInput) as bad_email:
        service.register("not-an-email", PASSWORD)
    assert bad_email.value.code == "INVALID_EMAIL"
    with pytest.raises(InvalidInput) as bad_password:
        service.register(EMAIL, "short")
    assert bad_password.value.code == "INVALID_PASSWORD"


def test_password_is_stored_hashed(service: AccountService, engine: Engine) -> None:
    service.register(EMAIL, PASSWORD)
    with DbSession(engine) as db:
        stored = db.scalars(select(User.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_get_user_unknown(service: AccountService) -> None:
    with pytest.raises(NotFound) as caught:
        service.get_user(99)
    assert caught.value.code == "USER_NOT_FOUND"


def test_create_user_creates_then_updates(service: AccountService) -> None:
    user_id = service.create_user("Root@Example.com", PASSWORD, ["admin"])
    assert service.get_user(user_id).roles == {Role.USER, Role.ADMIN}
    pair = service.login("root@example.com", PASSWORD)

    # Again with the same email: same account, new password and roles, old sessions ended.
    assert service.create_user("root@example.com", "a new password", ["support"]) == user_id
    assert service.get_user(user_id).roles == {Role.USER, Role.SUPPORT}
    with pytest.raises(InvalidCredentials):
        service.login("root@example.com", PASSWORD)
    service.login("root@example.com", "a new password")
    with pytest.raises(Unauthorized):
        service.authenticate_access_token(pair.access_token)
    with pytest.raises(InvalidInput) as caught:
        service.create_user("x@example.com", PASSWORD, ["superuser"])
    assert caught.value.code == "INVALID_ROLES"


# -- login and access tokens --------------------------------------------------------------


def test_login_and_authenticate(service: AccountService) -> None:
    user_id = service.register(EMAIL, PASSWORD)
    pair = service.login("Alice@Example.com", PASSWORD, ip="203.0.113.9", user_agent="pytest")
    assert pair.expires_in == ACCESS_TTL_S and pair.token_type == "Bearer"
    principal = service.authenticate_access_token(pair.access_token)
    assert principal.user_id == user_id
    assert principal.session_id == pair.session_id
    assert principal.roles == {Role.USER}
    assert principal.permissions == ALL_PERMISSIONS
    assert principal.api_key_id is None


def test_login_failures_look_the_same(service: AccountService) -> None:
    service.register(EMAIL, PASSWORD)
    failures = []
    for email, password in [
        ("nobody@example.com", PASSWORD),
        (EMAIL, "wrong password"),
        ("not an email", PASSWORD),
        (EMAIL, "x" * 500),
    ]:
        with pytest.raises(InvalidCredentials) as caught:
            service.login(email, password)
        failures.append((caught.value.status, caught.value.code, caught.value.message))
    assert len(set(failures)) == 1
    assert failures[0][:2] == (401, "INVALID_CREDENTIALS")


def test_disabled_account_cannot_log_in(service: AccountService, engine: Engine) -> None:
    user_id = service.register(EMAIL, PASSWORD)
    _set_status(engine, user_id, UserStatus.DISABLED.value)
    with pytest.raises(Forbidden) as caught:
        service.login(EMAIL, PASSWORD)
    assert caught.value.code == "ACCOUNT_DISABLED"


def test_access_token_expires(service: AccountService, clock: FakeClock) -> None:
    service.register(EMAIL, PASSWORD)
    pair = service.login(EMAIL, PASSWORD)
    clock.advance(ACCESS_TTL_S * 1000 - 1_000)
    service.authenticate_access_token(pair.access_token)
    clock.advance(1_000)
    with pytest.raises(TokenExpired):
        service.authenticate_access_token(pair.access_token)


def test_forged_and_alg_none_tokens_refused(service: AccountService) -> None:
    service.register(EMAIL, PASSWORD)
    pair = service.login(EMAIL, PASSWORD)
    claims = jwt.decode(pair.access_token, options={"verify_signature": False})
    claims["roles"] = ["user", "admin"]
    forged = jwt.encode(claims, "guessed-secret-guessed-secret-guessed!!", algorithm="HS256")
    unsigned = jwt.encode(claims, "", algorithm="none")
    for token in (forged, unsigned, pair.refresh_token):
        with pytest.raises(Unauthorized) as caught:
            service.authenticate_access_token(token)
        assert type(caught.value) is Unauthorized


def test_token_of_another_secret_key_refused(service: AccountService, engine: Engine) -> None:
    service.register(EMAIL, PASSWORD)
    pair = service.login(EMAIL, PASSWORD)
    other = AccountService(engine, "a-different-secret-key-0123456789", 900, 3600)
    with pytest.raises(Unauthorized):
        other.authenticate_access_token(pair.access_token)


def test_roles_follow_the_database_not_the_token(
    service: AccountService, engine: Engine, clock: FakeClock
) -> None:
    service.create_user("root@example.com", PASSWORD, ["admin"])
    pair = service.login("root@example.com", PASSWORD)
    assert Role.ADMIN in service.authenticate_access_token(pair.access_token).roles
    with DbSession(engine) as db, db.begin():
        db.execute(update(User).values(roles="user"))
    clock.advance(5_000)  # past the session cache
    assert service.authenticate_access_token(pair.access_token).roles == {Role.USER}


# -- refresh ------------------------------------------------------------------------------


def test_refresh_rotates(service: AccountService, clock: FakeClock) -> None:
    service.register(EMAIL, PASSWORD)
    first = service.login(EMAIL, PASSWORD)
    clock.advance(60_000)
    second = service.refresh(first.refresh_token)
    assert second.session_id == first.session_id
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    service.authenticate_access_token(second.access_token)
    third = service.refresh(second.refresh_token)
    service.authenticate_access_token(third.access_token)


def test_refresh_token_stored_only_as_hash(service: AccountService, engine: Engine) -> None:
    service.register(EMAIL, PASSWORD)
    pair = service.login(EMAIL, PASSWORD)
    with DbSession(engine) as db:
        hashes = db.scalars(select(RefreshToken.token_hash)).all()
    assert len(hashes) == 1 and pair.refresh_token not in hashes[0]
    assert len(hashes[0]) == 64


def test_refresh_reuse_revokes_the_session(service: AccountService, clock: FakeClock) -> None:
    service.register(EMAIL, PASSWORD)
    stolen = service.login(EMAIL, PASSWORD)
    legit = service.refresh(stolen.refresh_token)
    other_session = service.login(EMAIL, PASSWORD)

    with pytest.raises(RefreshTokenReused) as caught:
        service.refresh(stolen.refresh_token)  # the superseded token comes back
    assert caught.value.status == 401
    # The whole session is gone: its newest refresh token and its access tokens too.
    with pytest.raises(Unauthorized):
        service.refresh(legit.refresh_token)
    with pytest.raises(Unauthorized):
        service.authenticate_access_token(legit.access_token)
    # Other sessions of the user are untouched.
    service.authenticate_access_token(other_session.access_token)
    service.refresh(other_session.refresh_token)


def test_refresh_with_unknown_token(service: AccountService) -> None:
    for token in ("", "nope", "x" * 1000):
        with pytest.raises(Unauthorized):
            service.refresh(token)


def test_refresh_after_session_expiry(service: AccountService, clock: FakeClock) -> None:
    service.register(EMAIL, PASSWORD)
    pair = service.login(EMAIL, PASSWORD)
    clock.advance(REFRESH_TTL_S * 1000 - 1)
    pair = service.refresh(pair.refresh_token)  # sliding: this extends the session
    clock.advance(REFRESH_TTL_S * 1000 - 1)
    pair = service.refresh(pair.refresh_token)
    clock.advance(REFRESH_TTL_S * 1000)
    with pytest.raises(Unauthorized):
        service.refresh(pair.refresh_token)


def test_refresh_for_disabled_user(service: AccountService, engine: Engine) -> None:
    user_id = service.register(EMAIL, PASSWORD)
    pair = service.login(EMAIL, PASSWORD)
    _set_status(engine, user_id, UserStatus.DISABLED.value)
    with pytest.raises(Forbidden):
        service.refresh(pair.refresh_token)


# -- logout and sessions ------------------------------------------------------------------


def test_logout_takes_effect_at_once(service: AccountService) -> None:
    service.register(EMAIL, PASSWORD)
    pair = service.login(EMAIL, PASSWORD)
    principal = service.authenticate_access_token(pair.access_token)  # now cached
    assert principal.session_id is not None
    service.logout(principal.session_id)
    with pytest.raises(Unauthorized):
        service.authenticate_access_token(pair.access_token)
    with pytest.raises(Unauthorized):
        service.refresh(pair.refresh_token)
    service.logout(principal.session_id)  # idempotent


def test_revocation_elsewhere_seen_after_the_cache_ttl(
    service: AccountService, engine: Engine, clock: FakeClock
) -> None:
    # Another gateway replica revokes: this one notices once its cached answer is stale.
    service.register(EMAIL, PASSWORD)
    pair = service.login(EMAIL, PASSWORD)
    service.authenticate_access_token(pair.access_token)
    replica = make_service(engine, clock)
    replica.logout(pair.session_id)
    clock.advance(4_999)
    service.authenticate_access_token(pair.access_token)
    clock.advance(1)
    with pytest.raises(Unauthorized):
        service.authenticate_access_token(pair.access_token)


def test_list_and_revoke_sessions(service: AccountService, clock: FakeClock) -> None:
    user_id = service.register(EMAIL, PASSWORD)
    first = service.login(EMAIL, PASSWORD, ip="198.51.100.1", user_agent="laptop")
    clock.advance(1_000)
    second = service.login(EMAIL, PASSWORD, ip="198.51.100.2", user_agent="phone")
    sessions = service.list_sessions(user_id)
    assert [s.id for s in sessions] == [second.session_id, first.session_id]
    assert (sessions[0].ip, sessions[0].user_agent) == ("198.51.100.2", "phone")

    service.revoke_session(user_id, first.session_id)
    assert [s.id for s in service.list_sessions(user_id)] == [second.session_id]
    with pytest.raises(Unauthorized):
        service.authenticate_access_token(first.access_token)
    service.authenticate_access_token(second.access_token)


def test_revoke_session_of_another_user_is_not_found(service: AccountService) -> None:
    alice = service.register(EMAIL, PASSWORD)
    service.register("bob@example.com", PASSWORD)
    bobs = service.login("bob@example.com", PASSWORD)
    with pytest.raises(NotFound) as caught:
        service.revoke_session(alice, bobs.session_id)
    assert (caught.value.status, caught.value.code) == (404, "SESSION_NOT_FOUND")
    service.authenticate_access_token(bobs.access_token)
    with pytest.raises(NotFound):
        service.revoke_session(alice, "no-such-session")


def test_revoke_all_sessions(service: AccountService) -> None:
    user_id = service.register(EMAIL, PASSWORD)
    service.register("bob@example.com", PASSWORD)
    pairs = [service.login(EMAIL, PASSWORD) for _ in range(3)]
    bobs = service.login("bob@example.com", PASSWORD)
    for pair in pairs:
        service.authenticate_access_token(pair.access_token)
    assert service.revoke_all_sessions(user_id) == 3
    assert service.list_sessions(user_id) == []
    for pair in pairs:
        with pytest.raises(Unauthorized):
            service.authenticate_access_token(pair.access_token)
        with pytest.raises(Unauthorized):
            service.refresh(pair.refresh_token)
    service.authenticate_access_token(bobs.access_token)
    assert service.revoke_all_sessions(user_id) == 0


def test_sessions_per_user_are_bounded(service: AccountService, engine: Engine, clock: FakeClock) -> None:
    user_id = service.register(EMAIL, PASSWORD)
    first = service.login(EMAIL, PASSWORD)
    for _ in range(SESSIONS_PER_USER_MAX):
        clock.advance(1)
        service.login(EMAIL, PASSWORD)
    assert len(service.list_sessions(user_id)) == SESSIONS_PER_USER_MAX
    with pytest.raises(Unauthorized):
        service.refresh(first.refresh_token)  # the oldest one was ended
    with DbSession(engine) as db:
        revoked = db.scalars(select(UserSession.id).where(UserSession.revoked_at.is_not(None))).all()
    assert revoked == [first.session_id]
