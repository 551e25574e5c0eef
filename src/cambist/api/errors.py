"""Every error leaves the API as ``{"code": "UPPER_SNAKE", "message": "..."}``.

``ApiError`` is what handlers raise. The handlers below turn the framework's own errors
(validation, not found, method not allowed), the accounts layer's errors, the engine being
unavailable, and anything unexpected into that one shape with the contract's status.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from cambist.accounts.errors import AuthError
from cambist.core.types import RejectCode
from cambist.engine.engine import EngineOverloaded, EngineUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def not_found(code: str, message: str) -> ApiError:
    return ApiError(404, code, message)


# The HTTP status of each core reject: 400 the input itself is wrong for the market,
# 404 missing (also another user's), 409 conflict, 422 valid input refused by the rules.
REJECT_STATUS: dict[RejectCode, int] = {
    RejectCode.UNKNOWN_SYMBOL: 400,
    RejectCode.UNKNOWN_ASSET: 400,
    RejectCode.MARKET_HALTED: 422,
    RejectCode.INVALID_PRICE: 400,
    RejectCode.INVALID_QUANTITY: 400,
    RejectCode.INVALID_AMOUNT: 400,
    RejectCode.INVALID_ORDER: 400,
    RejectCode.BELOW_MIN_QUANTITY: 400,
    RejectCode.BELOW_MIN_NOTIONAL: 400,
    RejectCode.INSUFFICIENT_FUNDS: 422,
    RejectCode.POST_ONLY_WOULD_TAKE: 422,
    RejectCode.STOP_WOULD_TRIGGER: 422,
    RejectCode.ORDER_NOT_FOUND: 404,
    RejectCode.DUPLICATE_CLIENT_ORDER_ID: 409,
    RejectCode.INVALID_ASSET: 400,
    RejectCode.INVALID_MARKET: 400,
    RejectCode.ASSET_SCALE_LOCKED: 409,
    RejectCode.TOO_MANY_OPEN_ORDERS: 422,
    RejectCode.ACCOUNT_NOT_ALLOWED: 403,
    RejectCode.DUPLICATE_CREDIT_ID: 409,
}


def reject_error(code: RejectCode, message: str) -> ApiError:
    return ApiError(REJECT_STATUS.get(code, 422), code.value, message)


# Which error code a validation failure of a body field maps to.
FIELD_CODES = {
    "price": "INVALID_PRICE",
    "stopPrice": "INVALID_PRICE",
    "quantity": "INVALID_QUANTITY",
    "quoteQuantity": "INVALID_QUANTITY",
    "amount": "INVALID_AMOUNT",
}


def _body(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        {"code": code, "message": message},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def handle_api_error(_: Request[Any, Any, Any], error: ApiError) -> Response[Any]:
    return _body(error.status, error.code, error.message, error.headers)


def handle_auth_error(_: Request[Any, Any, Any], error: AuthError) -> Response[Any]:
    return _body(error.status, error.code, error.message)


def handle_unavailable(_: Request[Any, Any, Any], error: EngineUnavailable) -> Response[Any]:
    code = "OVERLOADED" if isinstance(error, EngineOverloaded) else "SERVICE_UNAVAILABLE"
    return _body(503, code, str(error), {"Retry-After": "1"})


def handle_validation(_: Request[Any, Any, Any], error: ValidationException) -> Response[Any]:
    code, message = "INVALID_REQUEST", "the request is not valid"
    details = error.extra if isinstance(error.extra, list) else []
    for detail in details:
        if not isinstance(detail, dict):
            continue
        key = str(detail.get("key") or "")
        field = key.removeprefix("$.").split(".")[0].split("[")[0]
        if field == "data":  # the whole body, e.g. an unknown field: the message says which
            field = ""
        text = str(detail.get("message") or "")
        code = FIELD_CODES.get(field, "INVALID_REQUEST")
        message = f"{field}: {text}" if field else text
        break
    else:
        if error.detail and "JSON" in error.detail.upper():
            code, message = "INVALID_JSON", "the body is not valid JSON"
        elif error.detail:
            message = error.detail
    return _body(400, code, message)


_HTTP_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


def handle_http(_: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    status = error.status_code
    code = _HTTP_CODES.get(status, "ERROR" if status < 500 else "INTERNAL_ERROR")
    message = error.detail or code.replace("_", " ").lower()
    if status == 400 and "json" in message.lower():
        code = "INVALID_JSON"
    return _body(status, code, message, dict(error.headers or {}))


def handle_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return _body(500, "INTERNAL_ERROR", "an internal error occurred")


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ApiError: handle_api_error,
    AuthError: handle_auth_error,
    EngineUnavailable: handle_unavailable,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}
