from __future__ import annotations

import base64
import json

import jwt
import pytest

from cambist.accounts.crypto import derive_key
from cambist.accounts.errors import TokenExpired, Unauthorized
from cambist.accounts.permissions import Role
from cambist.accounts.tokens import (
    decode_access_token,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)

from .support import SECRET_KEY, START_MS

KEY = derive_key(SECRET_KEY, "jwt-access/v1")


def _token(**overrides: object) -> str:
    token = issue_access_token(
        KEY, user_id=7, session_id="sid-1", roles={Role.USER, Role.ADMIN}, now_ms=START_MS, ttl_s=60
    )
    if not overrides:
        return token
    claims = jwt.decode(token, KEY, algorithms=["HS256"], options={"verify_exp": False})
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, KEY, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip() -> None:
    claims = decode_access_token(_token(), KEY, now_ms=START_MS + 1_000)
    assert claims.user_id == 7
    assert claims.session_id == "sid-1"
    assert claims.roles == {Role.USER, Role.ADMIN}
    assert claims.expires_at_s == START_MS // 1000 + 60
    assert claims.token_id


def test_claims_are_the_documented_ones() -> None:
    claims = jwt.decode(_token(), KEY, algorithms=["HS256"], options={"verify_exp": False})
    assert set(claims) == {"sub", "sid", "roles", "iat", "exp", "typ", "jti"}
    assert claims["sub"] == "7" and claims["typ"] == "access"


def test_expired_is_told_apart_from_invalid() -> None:
    token = _token()
    decode_access_token(token, KEY, now_ms=START_MS + 59_999)
    with pytest.raises(TokenExpired) as caught:
        decode_access_token(token, KEY, now_ms=START_MS + 60_000)
    assert caught.value.code == "TOKEN_EXPIRED" and caught.value.status == 401


def test_forged_with_another_key() -> None:
    other = derive_key("another-secret-key-entirely-000000", "jwt-access/v1")
    with pytest.raises(Unauthorized) as caught:
        decode_access_token(_token(), other, now_ms=START_MS)
    assert type(caught.value) is Unauthorized


def test_expired_forgery_is_invalid_not_expired() -> None:
    other = derive_key("another-secret-key-entirely-000000", "jwt-access/v1")
    with pytest.raises(Unauthorized) as caught:
        decode_access_token(_token(), other, now_ms=START_MS + 10_000_000)
    assert type(caught.value) is Unauthorized


def test_alg_none_refused() -> None:
    payload = jwt.decode(_token(), KEY, algorithms=["HS256"], options={"verify_exp": False})
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    for token in (f"{header}.{body}.", f"{header}.{body}"):
        with pytest.raises(Unauthorized):
            decode_access_token(token, KEY, now_ms=START_MS)


@pytest.mark.filterwarnings("ignore:The HMAC key is 32 bytes long")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_refused(algorithm: str) -> None:
    payload = jwt.decode(_token(), KEY, algorithms=["HS256"], options={"verify_exp": False})
    token = jwt.encode(payload, KEY, algorithm=algorithm)
    with pytest.raises(Unauthorized):
        decode_access_token(token, KEY, now_ms=START_MS)


def test_tampered_payload_refused() -> None:
    header, _, signature = _token().split(".")
    payload = jwt.decode(_token(), KEY, algorithms=["HS256"], options={"verify_exp": False})
    payload["sub"] = "1"
    with pytest.raises(Unauthorized):
        decode_access_token(
            f"{header}.{_b64(json.dumps(payload).encode())}.{signature}", KEY, now_ms=START_MS
        )


@pytest.mark.parametrize(
    "overrides",
    [
        {"typ": "refresh"},
        {"typ": None},
        {"sub": "abc"},
        {"sub": 7},
        {"sid": None},
        {"sid": ""},
        {"roles": "admin"},
        {"roles": ["root"]},
        {"exp": "tomorrow"},
        {"exp": True},
        {"jti": None},
    ],
)
def test_malformed_claims_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(Unauthorized) as caught:
        decode_access_token(_token(**overrides), KEY, now_ms=START_MS)
    assert type(caught.value) is Unauthorized


def test_issued_in_the_future_refused() -> None:
    token = _token(iat=START_MS // 1000 + 3600, exp=START_MS // 1000 + 7200)
    with pytest.raises(Unauthorized):
        decode_access_token(token, KEY, now_ms=START_MS)


@pytest.mark.parametrize("token", ["", "a.b.c", "x" * 5000, "not a token"])
def test_garbage_refused(token: str) -> None:
    with pytest.raises(Unauthorized):
        decode_access_token(token, KEY, now_ms=START_MS)


def test_refresh_tokens_are_random_and_hashed() -> None:
    first, second = new_refresh_token(), new_refresh_token()
    assert first != second and len(first) >= 43
    assert len(hash_refresh_token(first)) == 64
    assert hash_refresh_token(first) == hash_refresh_token(first) != hash_refresh_token(second)
