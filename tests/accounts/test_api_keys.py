"""API keys: creation, listing, deletion, limits, and how the secret is kept."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as DbSession

from cambist.accounts.api_keys import API_KEYS_PER_USER_MAX
from cambist.accounts.errors import InvalidInput, LimitExceeded, NotFound, Unauthorized
from cambist.accounts.permissions import Permission
from cambist.accounts.service import AccountService
from cambist.accounts.signing import sign
from cambist.store.models_accounts import ApiKey

from .support import FakeClock, make_service


@pytest.fixture
def user_id(service: AccountService) -> int:
    return service.register("alice@example.com", "correct horse battery")


def _signed_get(service: AccountService, key_id: str, secret: str, now_ms: int) -> None:
    timestamp = str(now_ms)
    signature = sign(secret, timestamp, "GET", "/api/v1/account/balances", b"")
    service.authenticate_signed_request(
        key_id, timestamp, signature, "GET", "/api/v1/account/balances", b"", None, "127.0.0.1"
    )


def test_create_list_delete(service: AccountService, user_id: int, clock: FakeClock) -> None:
    key_id, secret, info = service.create_api_key(user_id, "my bot", ["trade", "read"], ["203.0.113.0/24"])
    assert info.id == key_id and info.label == "my bot"
    assert info.permissions == {Permission.READ, Permission.TRADE}
    assert info.ip_allowlist == ("203.0.113.0/24",)
    assert info.created_at == clock.now_ms and info.last_used_at is None
    assert len(secret) == 64 and secret != key_id

    clock.advance(1)
    second_id, _, _ = service.create_api_key(user_id, "", ["read"], None)
    assert [k.id for k in service.list_api_keys(user_id)] == [second_id, key_id]
    assert service.list_api_keys(user_id)[0].ip_allowlist == ()

    service.delete_api_key(user_id, key_id)
    assert [k.id for k in service.list_api_keys(user_id)] == [second_id]
    with pytest.raises(NotFound) as caught:
        service.delete_api_key(user_id, key_id)  # already gone
    assert (caught.value.status, caught.value.code) == (404, "API_KEY_NOT_FOUND")


def test_another_users_key_is_not_found(service: AccountService, user_id: int) -> None:
    bob = service.register("bob@example.com", "correct horse battery")
    bobs_key, _, _ = service.create_api_key(bob, "b", ["read"])
    with pytest.raises(NotFound):
        service.delete_api_key(user_id, bobs_key)
    assert service.list_api_keys(user_id) == []
    assert [k.id for k in service.list_api_keys(bob)] == [bobs_key]


@pytest.mark.parametrize(
    ("label", "permissions", "allowlist", "code"),
    [
        ("x" * 65, ["read"], None, "INVALID_LABEL"),
        ("ok", [], None, "INVALID_PERMISSIONS"),
        ("ok", ["read", "admin"], None, "INVALID_PERMISSIONS"),
        ("ok", "read", None, "INVALID_PERMISSIONS"),
        ("ok", ["read"], ["10.0.0.1/33"], "INVALID_IP_ALLOWLIST"),
        ("ok", ["read"], ["example.com"], "INVALID_IP_ALLOWLIST"),
    ],
)
def test_create_validates(
    service: AccountService,
    user_id: int,
    label: str,
    permissions: list[str],
    allowlist: list[str] | None,
    code: str,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        service.create_api_key(user_id, label, permissions, allowlist)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert service.list_api_keys(user_id) == []


def test_at_most_twenty_keys(service: AccountService, user_id: int) -> None:
    ids = [service.create_api_key(user_id, f"k{i}", ["read"])[0] for i in range(API_KEYS_PER_USER_MAX)]
    with pytest.raises(LimitExceeded) as caught:
        service.create_api_key(user_id, "one too many", ["read"])
    assert (caught.value.status, caught.value.code) == (422, "TOO_MANY_API_KEYS")
    assert len(service.list_api_keys(user_id)) == API_KEYS_PER_USER_MAX
    service.delete_api_key(user_id, ids[0])  # deleting makes room again
    service.create_api_key(user_id, "replacement", ["read"])


def test_create_for_unknown_user(service: AccountService) -> None:
    with pytest.raises(NotFound):
        service.create_api_key(42, "x", ["read"])


def test_secret_is_never_stored_in_clear(service: AccountService, engine: Engine, user_id: int) -> None:
    key_id, secret, _ = service.create_api_key(user_id, "bot", ["read"])
    with DbSession(engine) as db:
        row = db.get(ApiKey, key_id)
        assert row is not None
        columns = [getattr(row, c.key) for c in ApiKey.__table__.columns]
    for value in columns:
        as_bytes = value if isinstance(value, bytes) else str(value).encode()
        assert secret.encode() not in as_bytes
        assert bytes.fromhex(secret) not in as_bytes
    assert len(row.secret_ciphertext) == 1 + 12 + len(secret) + 16  # version, nonce, tag


def test_ciphertext_bound_to_its_key_id(
    service: AccountService, engine: Engine, user_id: int, clock: FakeClock
) -> None:
    # A ciphertext moved onto another key's row must not decrypt there.
    first_id, first_secret, _ = service.create_api_key(user_id, "a", ["read"])
    second_id, _, _ = service.create_api_key(user_id, "b", ["read"])
    with DbSession(engine) as db, db.begin():
        stolen = db.scalars(select(ApiKey.secret_ciphertext).where(ApiKey.id == first_id)).one()
        db.execute(update(ApiKey).where(ApiKey.id == second_id).values(secret_ciphertext=stolen))
    with pytest.raises(Unauthorized):
        _signed_get(service, second_id, first_secret, clock.now_ms)
    _signed_get(service, first_id, first_secret, clock.now_ms)


def test_keys_survive_a_restart_but_not_a_new_secret_key(
    service: AccountService, engine: Engine, user_id: int, clock: FakeClock
) -> None:
    key_id, secret, _ = service.create_api_key(user_id, "bot", ["read"])
    _signed_get(make_service(engine, clock), key_id, secret, clock.now_ms)
    rekeyed = AccountService(engine, "an-entirely-new-secret-key-00000000", 900, 3600, clock=clock)
    with pytest.raises(Unauthorized):
        _signed_get(rekeyed, key_id, secret, clock.now_ms + 1)


def test_last_used_is_recorded(service: AccountService, user_id: int, clock: FakeClock) -> None:
    key_id, secret, _ = service.create_api_key(user_id, "bot", ["read"])
    _signed_get(service, key_id, secret, clock.now_ms)
    assert service.list_api_keys(user_id)[0].last_used_at == clock.now_ms
