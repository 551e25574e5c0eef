"""Access tokens (short-lived JWTs, HS256 only) and opaque refresh tokens.

The clock is passed in rather than read, so expiry is testable and PyJWT's own time checks are
switched off in favour of ours. Only HS256 is accepted: the algorithm list is fixed here and
never taken from the token header, which is what defeats ``alg: none`` and algorithm-confusion
forgeries.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from cambist.accounts.crypto import sha256_hex
from cambist.accounts.errors import TokenExpired, Unauthorized
from cambist.accounts.permissions import Role, join_roles

ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"
TOKEN_LENGTH_MAX = 4096  # refuse huge headers before parsing them
# Tokens issued "in the future" by a replica whose clock runs ahead are accepted up to this.
CLOCK_SKEW_S = 5

_REQUIRED_CLAIMS = ["sub", "sid", "roles", "iat", "exp", "typ", "jti"]
_DECODE_OPTIONS: Any = {
    "require": _REQUIRED_CLAIMS,
    "verify_signature": True,
    "verify_exp": False,  # checked below against the injected clock
    "verify_iat": False,
    "verify_nbf": False,
    "verify_aud": False,
    "verify_iss": False,
}


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: str
    roles: frozenset[Role]
    issued_at_s: int
    expires_at_s: int
    token_id: str


def issue_access_token(
    key: bytes,
    *,
    user_id: int,
    session_id: str,
    roles: Iterable[Role],
    now_ms: int,
    ttl_s: int,
) -> str:
    iat = now_ms // 1000
    claims = {
        "sub": str(user_id),
        "sid": session_id,
        "roles": join_roles(roles).split(","),
        "iat": iat,
        "exp": iat + ttl_s,
        "typ": ACCESS_TOKEN_TYPE,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_access_token(token: str, key: bytes, *, now_ms: int) -> AccessClaims:
    """Verify and parse; raise ``TokenExpired`` for a genuine but expired token and
    ``Unauthorized`` for anything forged, malformed or of another type."""
    if not isinstance(token, str) or not token or len(token) > TOKEN_LENGTH_MAX:
        raise Unauthorized("invalid access token")
    try:
        payload = jwt.decode(token, key, algorithms=[ALGORITHM], options=_DECODE_OPTIONS)
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("invalid access token") from None
    # PyJWT already refused other algorithms; this also refuses a header it let through.
    if header.get("alg") != ALGORITHM:
        raise Unauthorized("invalid access token")
    claims = _parse_claims(payload)
    now_s = now_ms // 1000
    if claims.issued_at_s > now_s + CLOCK_SKEW_S:
        raise Unauthorized("invalid access token")
    if now_s >= claims.expires_at_s:
        raise TokenExpired()
    return claims


def _parse_claims(payload: dict[str, Any]) -> AccessClaims:
    try:
        if payload["typ"] != ACCESS_TOKEN_TYPE:
            raise ValueError("not an access token")
        sub, sid, roles = payload["sub"], payload["sid"], payload["roles"]
        iat, exp, jti = payload["iat"], payload["exp"], payload["jti"]
        if not (isinstance(sub, str) and sub.isascii() and sub.isdigit()):
            raise ValueError("bad sub")
        if not (isinstance(sid, str) and sid and isinstance(jti, str)):
            raise ValueError("bad sid or jti")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ValueError("bad roles")
        # bool is an int subclass; a JSON true must not pass for a time.
        if not all(type(t) is int for t in (iat, exp)):
            raise ValueError("bad times")
        return AccessClaims(
            user_id=int(sub),
            session_id=sid,
            roles=frozenset(Role(r) for r in roles),
            issued_at_s=iat,
            expires_at_s=exp,
            token_id=jti,
        )
    except (KeyError, ValueError):
        raise Unauthorized("invalid access token") from None


def new_refresh_token() -> str:
    """An opaque 256-bit token; only its hash is stored."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return sha256_hex(token)
