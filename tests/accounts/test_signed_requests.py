"""Signed requests: the API.md rule, the time window, replays, IP allowlists, revocation."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as DbSession

from cambist.accounts import signing
from cambist.accounts.errors import (
    Forbidden,
    InvalidInput,
    InvalidSignature,
    ReplayedRequest,
    TimestampOutsideWindow,
    Unauthorized,
)
from cambist.accounts.permissions import Permission, Principal, Role
from cambist.accounts.records import UserStatus
from cambist.accounts.service import AccountService
from cambist.store.models_accounts import User

from .support import FakeClock, make_service

PATH = "/api/v1/orders?symbol=BTC-USDT&limit=5"
BODY = b'{"symbol":"BTC-USDT","side":"buy","type":"limit","quantity":"0.01","price":"65000.5"}'
CLIENT_IP = "203.0.113.7"


class Client:
    """Signs like a client following API.md, written out by hand rather than with ``sign``."""

    def __init__(self, service: AccountService, clock: FakeClock, key_id: str, secret: str) -> None:
        self.service, self.clock, self.key_id, self.secret = service, clock, key_id, secret

    def signature(self, timestamp: str, method: str, path: str, body: bytes) -> str:
        message = timestamp.encode() + method.encode() + path.encode() + body
        return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()

    def send(
        self,
        method: str = "POST",
        path: str = PATH,
        body: bytes = BODY,
        *,
        timestamp_ms: int | None = None,
        recv_window_ms: int | None = None,
        client_ip: str | None = CLIENT_IP,
        signature: str | None = None,
        signed_body: bytes | None = None,
    ) -> Principal:
        timestamp = str(self.clock.now_ms if timestamp_ms is None else timestamp_ms)
        if signature is None:
            signature = self.signature(timestamp, method, path, body if signed_body is None else signed_body)
        return self.service.authenticate_signed_request(
            self.key_id, timestamp, signature, method, path, body, recv_window_ms, client_ip
        )


@pytest.fixture
def user_id(service: AccountService) -> int:
    return service.register("bot@example.com", "correct horse battery")


@pytest.fixture
def client(service: AccountService, clock: FakeClock, user_id: int) -> Client:
    key_id, secret, _ = service.create_api_key(user_id, "bot", ["read", "trade"])
    return Client(service, clock, key_id, secret)


def test_happy_path_with_query_and_body(client: Client, user_id: int) -> None:
    principal = client.send()
    assert principal.user_id == user_id
    assert principal.api_key_id == client.key_id
    assert principal.session_id is None
    assert principal.permissions == {Permission.READ, Permission.TRADE}
    assert principal.roles == {Role.USER}


def test_get_without_body_and_the_ws_form(client: Client) -> None:
    client.send("GET", "/api/v1/account/balances", b"")
    client.clock.advance(1)
    client.send("GET", "/ws", b"")  # the WebSocket auth message signs timestamp + "GET/ws"


def test_matches_the_shared_signing_helper(client: Client) -> None:
    timestamp = str(client.clock.now_ms)
    assert signing.sign(client.secret, timestamp, "POST", PATH, BODY) == client.signature(
        timestamp, "POST", PATH, BODY
    )
    assert signing.sign(client.secret, timestamp, "post", PATH, BODY) == client.signature(
        timestamp, "POST", PATH, BODY
    )


def test_wrong_signature(client: Client) -> None:
    with pytest.raises(InvalidSignature) as caught:
        client.send(signature="0" * 64)
    assert (caught.value.status, caught.value.code) == (401, "INVALID_SIGNATURE")


@pytest.mark.parametrize(
    "signature",
    ["", "abc", "g" * 64, "0" * 63, "0" * 65, "é" * 64],
)
def test_malformed_signature(client: Client, signature: str) -> None:
    with pytest.raises(InvalidSignature):
        client.send(signature=signature)


def test_upper_case_signature_refused(client: Client) -> None:
    # Accepting it would let a replay through under a second spelling of the same signature.
    timestamp = str(client.clock.now_ms)
    good = client.signature(timestamp, "POST", PATH, BODY)
    with pytest.raises(InvalidSignature):
        client.send(signature=good.upper())
    client.send(signature=good)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", PATH, BODY),  # another method
        ("POST", "/api/v1/orders", BODY),  # query string dropped
        ("POST", "/api/v1/orders?symbol=ETH-USDT&limit=5", BODY),  # query changed
        ("POST", PATH, BODY + b" "),  # body changed
        ("POST", PATH, b""),  # body dropped
    ],
)
def test_signature_covers_method_path_query_and_body(
    client: Client, method: str, path: str, body: bytes
) -> None:
    timestamp = str(client.clock.now_ms)
    signature = client.signature(timestamp, "POST", PATH, BODY)
    with pytest.raises(InvalidSignature):
        client.send(method, path, body, signature=signature)


def test_another_keys_secret_does_not_sign(service: AccountService, client: Client, user_id: int) -> None:
    _, other_secret, _ = service.create_api_key(user_id, "other", ["read"])
    impostor = Client(service, client.clock, client.key_id, other_secret)
    with pytest.raises(InvalidSignature):
        impostor.send()


# -- time window --------------------------------------------------------------------------


def test_window_edges(client: Client) -> None:
    now = client.clock.now_ms
    client.send(timestamp_ms=now - 5_000)  # exactly the default window
    with pytest.raises(TimestampOutsideWindow) as caught:
        client.send(timestamp_ms=now - 5_001)
    assert (caught.value.status, caught.value.code) == (401, "TIMESTAMP_OUTSIDE_WINDOW")


def test_future_timestamps(client: Client) -> None:
    now = client.clock.now_ms
    client.send(timestamp_ms=now + 1_000)  # a client clock slightly ahead is tolerated
    with pytest.raises(TimestampOutsideWindow):
        client.send(timestamp_ms=now + 1_001)


def test_recv_window_widens_up_to_sixty_seconds(client: Client) -> None:
    now = client.clock.now_ms
    with pytest.raises(TimestampOutsideWindow):
        client.send(timestamp_ms=now - 30_000)
    client.send(timestamp_ms=now - 30_000, recv_window_ms=30_000)
    client.send(timestamp_ms=now - 60_000, recv_window_ms=60_000)
    with pytest.raises(TimestampOutsideWindow):
        client.send(timestamp_ms=now - 2_000, recv_window_ms=1_000)  # narrower is honoured


@pytest.mark.parametrize("recv_window_ms", [60_001, 0, -1, 10**9])
def test_recv_window_out_of_range(client: Client, recv_window_ms: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        client.send(recv_window_ms=recv_window_ms)
    assert (caught.value.status, caught.value.code) == (400, "INVALID_RECV_WINDOW")


def test_parse_recv_window_header() -> None:
    assert signing.parse_recv_window(None) is None
    assert signing.parse_recv_window("60000") == 60_000
    for bad in ("60001", "0", "-5", "5.5", "1e4", "", " 100", "１００"):
        with pytest.raises(InvalidInput):
            signing.parse_recv_window(bad)


@pytest.mark.parametrize("timestamp", ["", "abc", "-1", "1.5e12", "0123", " 1700000000000", "１"])
def test_malformed_timestamp(service: AccountService, client: Client, timestamp: str) -> None:
    signature = client.signature(timestamp, "GET", "/x", b"")
    with pytest.raises(TimestampOutsideWindow):
        service.authenticate_signed_request(
            client.key_id, timestamp, signature, "GET", "/x", b"", None, CLIENT_IP
        )


def test_configured_window(engine: Engine, clock: FakeClock, user_id: int) -> None:
    strict = make_service(engine, clock, signature_window_ms=1_000)
    key_id, secret, _ = strict.create_api_key(user_id, "bot", ["read"])
    client = Client(strict, clock, key_id, secret)
    client.send(timestamp_ms=clock.now_ms - 1_000)
    with pytest.raises(TimestampOutsideWindow):
        client.send(timestamp_ms=clock.now_ms - 1_001)


# -- replays ------------------------------------------------------------------------------


def test_replay_refused(client: Client) -> None:
    timestamp_ms = client.clock.now_ms
    client.send(timestamp_ms=timestamp_ms)
    client.clock.advance(100)
    with pytest.raises(ReplayedRequest) as caught:
        client.send(timestamp_ms=timestamp_ms)
    assert (caught.value.status, caught.value.code) == (401, "REPLAYED_REQUEST")


def test_replay_with_a_widened_recv_window_refused(client: Client) -> None:
    # X-RECV-WINDOW is not signed: a replayer may raise it to 60 s, so memory must cover that.
    timestamp_ms = client.clock.now_ms
    client.send(timestamp_ms=timestamp_ms)
    client.clock.advance(59_000)
    with pytest.raises(ReplayedRequest):
        client.send(timestamp_ms=timestamp_ms, recv_window_ms=60_000)
    client.clock.advance(2_000)
    with pytest.raises(TimestampOutsideWindow):  # and after that the window refuses it
        client.send(timestamp_ms=timestamp_ms, recv_window_ms=60_000)


def test_same_request_at_another_millisecond_is_not_a_replay(client: Client) -> None:
    client.send()
    client.clock.advance(1)
    client.send()


def test_forgeries_do_not_fill_the_replay_memory(client: Client) -> None:
    timestamp_ms = client.clock.now_ms
    good = client.signature(str(timestamp_ms), "POST", PATH, BODY)
    with pytest.raises(InvalidSignature):
        client.send(timestamp_ms=timestamp_ms, signature=good, body=b"{}")
    client.send(timestamp_ms=timestamp_ms, signature=good)  # the genuine one still passes once


# -- keys, users, IPs ---------------------------------------------------------------------


def test_unknown_key(service: AccountService, client: Client) -> None:
    for key_id in ("no-such-key", "", "k" * 500):
        impostor = Client(service, client.clock, key_id, client.secret)
        with pytest.raises(Unauthorized) as caught:
            impostor.send()
        assert caught.value.code == "UNAUTHORIZED"


def test_revoked_key_refused_at_once(service: AccountService, client: Client, user_id: int) -> None:
    client.send()  # the key is now cached
    service.delete_api_key(user_id, client.key_id)
    client.clock.advance(1)
    with pytest.raises(Unauthorized):
        client.send()


def test_revocation_elsewhere_seen_after_the_cache_ttl(
    engine: Engine, clock: FakeClock, client: Client, user_id: int
) -> None:
    client.send()
    make_service(engine, clock).delete_api_key(user_id, client.key_id)  # another replica
    clock.advance(4_999)
    client.send()
    clock.advance(1)
    with pytest.raises(Unauthorized):
        client.send()


def test_disabled_user_key_refused(engine: Engine, client: Client, user_id: int) -> None:
    with DbSession(engine) as db, db.begin():
        db.execute(update(User).where(User.id == user_id).values(status=UserStatus.DISABLED.value))
    with pytest.raises(Unauthorized):
        client.send()


def test_ip_allowlist(service: AccountService, clock: FakeClock, user_id: int) -> None:
    key_id, secret, _ = service.create_api_key(user_id, "office", ["read"], ["203.0.113.0/24", "2001:db8::1"])
    client = Client(service, clock, key_id, secret)
    client.send(client_ip="203.0.113.200")
    clock.advance(1)
    client.send(client_ip="2001:db8::1")
    clock.advance(1)
    client.send(client_ip="::ffff:203.0.113.9")
    for ip in ("198.51.100.1", "2001:db8::2", None, "not-an-ip"):
        clock.advance(1)
        with pytest.raises(Forbidden) as caught:
            client.send(client_ip=ip)
        assert (caught.value.status, caught.value.code) == (403, "IP_NOT_ALLOWED")


def test_key_without_allowlist_accepts_any_ip(client: Client) -> None:
    client.send(client_ip=None)


def test_permissions_of_the_key(service: AccountService, clock: FakeClock, user_id: int) -> None:
    key_id, secret, _ = service.create_api_key(user_id, "trader", ["trade"])
    principal = Client(service, clock, key_id, secret).send()
    principal.require(Permission.TRADE)
    for missing in (Permission.READ, Permission.WITHDRAW):
        with pytest.raises(Forbidden):
            principal.require(missing)
    with pytest.raises(Forbidden):
        principal.require_session()  # a key cannot create keys or widen its permissions


def test_admin_key_carries_no_admin_role(service: AccountService, clock: FakeClock) -> None:
    admin = service.create_user("root@example.com", "correct horse battery", ["admin"])
    key_id, secret, _ = service.create_api_key(admin, "ops", ["read", "trade", "withdraw"])
    principal = Client(service, clock, key_id, secret).send()
    with pytest.raises(Forbidden):
        principal.require_role(Role.ADMIN)


# -- property: any tampering breaks the signature ----------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_tampered_body_byte_fails(client: Client, data: st.DataObject) -> None:
    body = data.draw(st.binary(min_size=1, max_size=256), label="body")
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="flip")
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    client.clock.advance(1)
    with pytest.raises(InvalidSignature):
        client.send(body=tampered, signed_body=body)


@settings(max_examples=100, deadline=None)
@given(
    secret=st.text(min_size=1, max_size=64),
    timestamp=st.integers(1, 10**13).map(str),
    path=st.text(min_size=1, max_size=64),
    body=st.binary(max_size=128),
    extra=st.binary(min_size=1, max_size=8),
)
def test_signing_rule_is_injective_on_the_body(
    secret: str, timestamp: str, path: str, body: bytes, extra: bytes
) -> None:
    signature = signing.sign(secret, timestamp, "POST", path, body)
    signing.verify_signature(secret, signature, timestamp, "POST", path, body)
    with pytest.raises(InvalidSignature):
        signing.verify_signature(secret, signature, timestamp, "POST", path, body + extra)
