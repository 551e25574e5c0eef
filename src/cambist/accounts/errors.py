"""Errors of the accounts layer, each with a stable API ``code`` and an HTTP ``status``.

The gateway maps any ``AuthError`` to ``{"code": e.code, "message": e.message}`` with status
``e.status``; nothing else needs to know the classes. The hierarchy::

    AuthError
    ├── Unauthorized            401 UNAUTHORIZED
    │   ├── TokenExpired            401 TOKEN_EXPIRED
    │   ├── InvalidSignature        401 INVALID_SIGNATURE
    │   ├── TimestampOutsideWindow  401 TIMESTAMP_OUTSIDE_WINDOW
    │   ├── ReplayedRequest         401 REPLAYED_REQUEST
    │   ├── InvalidCredentials      401 INVALID_CREDENTIALS
    │   └── RefreshTokenReused      401 REFRESH_TOKEN_REUSED
    ├── Forbidden               403 FORBIDDEN (also IP_NOT_ALLOWED, ACCOUNT_DISABLED)
    ├── NotFound                404 API_KEY_NOT_FOUND | SESSION_NOT_FOUND | USER_NOT_FOUND
    ├── EmailTaken              409 EMAIL_TAKEN
    ├── InvalidInput            400 INVALID_EMAIL | INVALID_PASSWORD | INVALID_PERMISSIONS |
    │                               INVALID_RECV_WINDOW | INVALID_IP_ALLOWLIST | INVALID_LABEL |
    │                               INVALID_ROLES | INVALID_HEADER
    ├── LimitExceeded           422 TOO_MANY_API_KEYS
    └── ServiceUnavailable      503 SERVICE_UNAVAILABLE (a backing service, e.g. the shared
                                    replay guard's Redis, cannot answer: refused, not let through)
"""

from __future__ import annotations

from typing import ClassVar


class AuthError(Exception):
    """Base of every error this layer raises on purpose."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "BAD_REQUEST"
    default_message: ClassVar[str] = "the request was refused"

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message: str = message if message is not None else self.default_message
        self.code: str = code if code is not None else self.default_code
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class Unauthorized(AuthError):
    status = 401
    default_code = "UNAUTHORIZED"
    default_message = "authentication required"


class TokenExpired(Unauthorized):
    default_code = "TOKEN_EXPIRED"
    default_message = "the access token has expired"


class InvalidSignature(Unauthorized):
    default_code = "INVALID_SIGNATURE"
    default_message = "the request signature is not valid"


class TimestampOutsideWindow(Unauthorized):
    default_code = "TIMESTAMP_OUTSIDE_WINDOW"
    default_message = "the request timestamp is outside the allowed window"


class ReplayedRequest(Unauthorized):
    default_code = "REPLAYED_REQUEST"
    default_message = "this signed request was already received"


class InvalidCredentials(Unauthorized):
    default_code = "INVALID_CREDENTIALS"
    # One message for an unknown email and a wrong password: nothing tells which it was.
    default_message = "invalid email or password"


class RefreshTokenReused(Unauthorized):
    default_code = "REFRESH_TOKEN_REUSED"
    default_message = "this refresh token was already used; the session has been revoked"


class Forbidden(AuthError):
    status = 403
    default_code = "FORBIDDEN"
    default_message = "not allowed"


class NotFound(AuthError):
    status = 404
    default_code = "NOT_FOUND"
    default_message = "not found"


class EmailTaken(AuthError):
    status = 409
    default_code = "EMAIL_TAKEN"
    default_message = "an account with this email already exists"


class InvalidInput(AuthError):
    status = 400
    default_code = "INVALID_INPUT"
    default_message = "invalid input"


class LimitExceeded(AuthError):
    # 422: the input is well formed, a business rule (a per-user limit) refuses it.
    status = 422
    default_code = "LIMIT_EXCEEDED"
    default_message = "limit exceeded"


class ServiceUnavailable(AuthError):
    # 503: nothing is wrong with the request; a check it needs cannot be made right now, and
    # such a check fails closed (the request is refused, never waved through). Retry later.
    status = 503
    default_code = "SERVICE_UNAVAILABLE"
    default_message = "the service is temporarily unavailable; retry later"
