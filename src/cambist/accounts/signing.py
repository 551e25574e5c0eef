"""The request-signing rule of API.md, as pure functions shared by the server and clients.

    X-SIGNATURE = lowercase hex HMAC-SHA256(secret, timestamp + METHOD + path + body)

``timestamp`` is the ``X-TIMESTAMP`` header exactly as sent (ms), ``path`` the request path with
its query string exactly as sent (not decoded or re-encoded), ``body`` the raw body bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from cambist.accounts.errors import InvalidInput, InvalidSignature, TimestampOutsideWindow

DEFAULT_WINDOW_MS = 5_000
RECV_WINDOW_MS_MAX = 60_000
# A client clock ahead of ours by up to this much is tolerated; more is refused.
FUTURE_TOLERANCE_MS = 1_000

# Exactly 64 lowercase hex digits. Accepting upper case too would let one request arrive
# under two signature strings and slip past the replay guard, which keys on the string.
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP_RE = re.compile(r"[1-9][0-9]{0,15}")
_RECV_WINDOW_RE = re.compile(r"[1-9][0-9]{0,5}")


def signature_payload(timestamp: str, method: str, path_with_query: str, body: bytes) -> bytes:
    return (timestamp + method.upper() + path_with_query).encode() + body


def sign(secret: str, timestamp: str, method: str, path_with_query: str, body: bytes) -> str:
    """What a client puts in ``X-SIGNATURE``; the HMAC key is the secret's UTF-8 bytes."""
    payload = signature_payload(timestamp, method, path_with_query, body)
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    signature: str,
    timestamp: str,
    method: str,
    path_with_query: str,
    body: bytes,
) -> None:
    expected = sign(secret, timestamp, method, path_with_query, body)
    # Constant time: the comparison must not reveal how many leading characters matched.
    if not hmac.compare_digest(expected, signature):
        raise InvalidSignature()


def check_signature_format(signature: str) -> None:
    if not isinstance(signature, str) or not _SIGNATURE_RE.fullmatch(signature):
        raise InvalidSignature("X-SIGNATURE must be 64 lowercase hex digits")


def parse_timestamp(timestamp: str) -> int:
    if not isinstance(timestamp, str) or not _TIMESTAMP_RE.fullmatch(timestamp):
        raise TimestampOutsideWindow("X-TIMESTAMP must be milliseconds since the epoch")
    return int(timestamp)


def parse_recv_window(value: str | None) -> int | None:
    """Parse the ``X-RECV-WINDOW`` header for the gateway; ``None`` when absent."""
    if value is None:
        return None
    if not _RECV_WINDOW_RE.fullmatch(value):
        raise InvalidInput(
            "X-RECV-WINDOW must be a positive integer of milliseconds",
            code="INVALID_RECV_WINDOW",
        )
    return check_recv_window(int(value))


def check_recv_window(recv_window_ms: int) -> int:
    if type(recv_window_ms) is not int or not (1 <= recv_window_ms <= RECV_WINDOW_MS_MAX):
        raise InvalidInput(
            f"X-RECV-WINDOW must be between 1 and {RECV_WINDOW_MS_MAX} ms",
            code="INVALID_RECV_WINDOW",
        )
    return recv_window_ms


def check_timestamp(timestamp_ms: int, now_ms: int, window_ms: int) -> None:
    if timestamp_ms > now_ms + FUTURE_TOLERANCE_MS:
        raise TimestampOutsideWindow("the request timestamp is in the future")
    if now_ms - timestamp_ms > window_ms:
        raise TimestampOutsideWindow("the request is older than the allowed window")
