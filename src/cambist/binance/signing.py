"""Binance request signing (binance-compat.md §3): who is calling a signed ``/api/v3`` endpoint.

A signed request carries ``X-MBX-APIKEY`` and, among its parameters, ``timestamp``, an
optional ``recvWindow`` and ``signature`` = lowercase hex HMAC-SHA256(secret, totalParams).
totalParams is the raw query string followed directly by the raw body, exactly as received,
with the ``signature=`` item taken out: nothing is decoded, re-sorted or re-encoded before the
HMAC, so what the client signed is what is checked. Parameters are read from the query and a
form-encoded body together.

Checks run cheapest first (headers, parameters, clock) and reach the key store last, so a
malformed or stale request never costs a database read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from litestar import Request

from cambist.accounts.errors import AuthError
from cambist.accounts.permissions import Permission, Principal
from cambist.api.auth import client_ip, runtime_of
from cambist.api.runtime import Runtime
from cambist.binance import errors

RECV_WINDOW_DEFAULT_MS = 5_000
RECV_WINDOW_MAX_MS = 60_000
AHEAD_TOLERANCE_MS = 1_000  # a timestamp this far in the server's future is still accepted
PARAMS_MAX = 64  # no endpoint takes nearly as many; more is a malformed or hostile request
INT_PATTERN = "^[0-9]{1,20}$"
API_KEY_HEADER = "x-mbx-apikey"
API_KEY_LENGTH_MAX = 128
API_KEY_RE = re.compile(r"[A-Za-z0-9_\-]+")


def now_ms() -> int:
    """The server's clock (a module function so tests can move it)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Signed:
    """An authenticated request: who sent it and its parameters (query and body merged)."""

    principal: Principal
    params: dict[str, str]

    @property
    def user_id(self) -> int:
        return self.principal.user_id


# -- pure parts: payload, HMAC, parameters, clock ------------------------------------------------


def strip_signature(raw: bytes) -> tuple[bytes, list[bytes]]:
    """``raw`` (a query string or form body) without its ``signature=`` items, and their values.
    The other items keep their bytes and their order."""
    if not raw:
        return b"", []
    kept: list[bytes] = []
    signatures: list[bytes] = []
    for item in raw.split(b"&"):
        name, eq, value = item.partition(b"=")
        if name == b"signature" and eq:
            signatures.append(value)
        else:
            kept.append(item)
    return b"&".join(kept), signatures


def total_params(query: bytes, body: bytes) -> tuple[bytes, list[bytes]]:
    """Binance's totalParams (query string then body, no separator) without ``signature``,
    and every ``signature`` value found."""
    query_payload, query_signatures = strip_signature(query)
    body_payload, body_signatures = strip_signature(body)
    return query_payload + body_payload, query_signatures + body_signatures


def hmac_hex(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def parse_params(query: bytes, body: bytes) -> dict[str, str]:
    """The parameters of the query and the form body together; a name sent twice is refused."""
    params: dict[str, str] = {}
    for raw in (query, body):
        if not raw:
            continue
        try:
            text = raw.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=PARAMS_MAX, errors="strict")
        except UnicodeDecodeError:
            raise errors.BinanceError(
                errors.ILLEGAL_CHARS, "Illegal characters found in a parameter."
            ) from None
        except ValueError:
            raise errors.BinanceError(
                errors.TOO_MANY_PARAMETERS, "Too many parameters sent for this endpoint."
            ) from None
        for name, value in pairs:
            if name in params:
                raise errors.BinanceError(
                    errors.TOO_MANY_PARAMETERS, "Duplicate values for a parameter detected."
                )
            params[name] = value
        if len(params) > PARAMS_MAX:
            raise errors.BinanceError(
                errors.TOO_MANY_PARAMETERS, "Too many parameters sent for this endpoint."
            )
    return params


def illegal(name: str, legal: str) -> errors.BinanceError:
    return errors.BinanceError(
        errors.ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def parse_int(params: dict[str, str], name: str) -> int | None:
    """An optional integer parameter: None if absent, -1100 if not a plain integer."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 20:
        raise illegal(name, INT_PATTERN)
    return int(value)


def check_time(params: dict[str, str], now: int) -> None:
    """``timestamp`` is mandatory and within ``recvWindow`` (default 5000, at most 60000) of
    ``now``; no more than 1000 ms in the server's future."""
    check_window(parse_int(params, "timestamp"), parse_int(params, "recvWindow"), now)


def check_window(timestamp: int | None, window: int | None, now: int) -> None:
    """The timing rules of REST and WS-API alike, once their parameters are integers."""
    if timestamp is None:
        raise errors.mandatory("timestamp")
    if window is None:
        window = RECV_WINDOW_DEFAULT_MS
    if window > RECV_WINDOW_MAX_MS:
        raise errors.error(errors.BAD_RECV_WINDOW)
    if timestamp > now + AHEAD_TOLERANCE_MS:
        raise errors.error(errors.TIMESTAMP_AHEAD)
    if now - timestamp > window:
        raise errors.error(errors.INVALID_TIMESTAMP)


def api_key_of(request: Request[Any, Any, Any]) -> str:
    """The ``X-MBX-APIKEY`` header: -2014 when missing or not a plausible key."""
    key = request.headers.get(API_KEY_HEADER, "")
    if not key or len(key) > API_KEY_LENGTH_MAX or not API_KEY_RE.fullmatch(key):
        raise errors.error(errors.BAD_API_KEY_FMT, 401)
    return key


def require(principal: Principal, permission: Permission) -> None:
    if not principal.has(permission):
        raise errors.error(errors.REJECTED_MBX_KEY, 401)


# -- the request ---------------------------------------------------------------------------------


async def authenticate(
    request: Request[Any, Any, Any], permission: Permission, *, clock: Callable[[], int] | None = None
) -> Signed:
    """Check a signed request and return its principal and parameters, or raise the Binance
    error (-2014, -1101/-1100/-1102, -1131, -1021, -2015, -1022)."""
    runtime: Runtime = runtime_of(request)
    api_key = api_key_of(request)
    query: bytes = request.scope.get("query_string") or b""
    body = await request.body()
    params = parse_params(query, body)
    payload, signatures = total_params(query, body)
    if len(signatures) != 1 or not signatures[0]:
        if len(signatures) > 1:
            raise errors.BinanceError(
                errors.TOO_MANY_PARAMETERS, "Duplicate values for a parameter detected."
            )
        raise errors.mandatory("signature")
    check_time(params, (clock or now_ms)())
    signature = signatures[0].decode("latin-1")
    try:
        principal = await runtime.read(
            runtime.accounts.authenticate_payload_signature, api_key, payload, signature, client_ip(request)
        )
    except AuthError as exc:
        raise errors.from_auth_error(exc) from None
    require(principal, permission)
    params.pop("signature", None)
    return Signed(principal, params)


async def key_owner(request: Request[Any, Any, Any], permission: Permission = Permission.READ) -> int:
    """For ``userDataStream`` (an API key, no signature): the key's owner, checked against its
    IP allowlist and ``permission``. -2014 without a key, -2015 for an unknown key, a refused
    IP or a missing permission."""
    runtime = runtime_of(request)
    api_key = api_key_of(request)
    principal = await runtime.read(_principal_of_key, runtime, api_key, client_ip(request))
    if principal is None:
        raise errors.error(errors.REJECTED_MBX_KEY, 401)
    require(principal, permission)
    return principal.user_id


def _principal_of_key(runtime: Runtime, api_key: str, ip: str | None) -> Principal | None:
    return runtime.accounts.api_key_principal(api_key, ip)
