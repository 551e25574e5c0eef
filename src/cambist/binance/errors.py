"""Binance error bodies: ``{"code": <negative int>, "msg": "<Binance's exact text>"}``.

ccxt maps errors by the exact ``msg`` first, then by ``code`` (binance-compat.md §3), and
hummingbot string-matches some texts, so the texts here are Binance's, word for word. The
HTTP status follows Binance: 400 for a bad request, 401 for a bad API key, 403 for a
forbidden action, 429 for rate limits, 503 when the engine cannot answer.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from cambist.accounts.errors import AuthError
from cambist.core.types import RejectCode
from cambist.engine.engine import EngineOverloaded, EngineUnavailable, OutcomeUnknown


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}


# -- the messages, as Binance words them ---------------------------------------------------------

UNKNOWN = (-1000, "An unknown error occured while processing the request.")
DISCONNECTED = (-1001, "Internal error; unable to process your request. Please try again.")
TOO_MANY_REQUESTS = (-1003, "Too much request weight used; please use the API to get market data.")
UNEXPECTED_RESPONSE = (
    -1006,
    "An unexpected response was received from the message bus. Execution status unknown.",
)
TIMEOUT = (
    -1007,
    "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
)
SERVER_BUSY = (
    -1008,
    "Server is currently overloaded with other requests. Please try again in a few minutes.",
)
INVALID_TIMESTAMP = (-1021, "Timestamp for this request is outside of the recvWindow.")
TIMESTAMP_AHEAD = (-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
INVALID_SIGNATURE = (-1022, "Signature for this request is not valid.")
ILLEGAL_CHARS = -1100  # "Illegal characters found in parameter '%s'; legal range is '%s'."
TOO_MANY_PARAMETERS = -1101
MANDATORY_PARAM_EMPTY_OR_MALFORMED = (
    -1102
)  # "Mandatory parameter '%s' was not sent, was empty/null, or malformed."
UNKNOWN_PARAM = -1103
UNREAD_PARAMETERS = -1104
PARAM_EMPTY = -1105
PARAM_NOT_REQUIRED = -1106  # "Parameter '%s' sent when not required."
BAD_PRECISION = -1111  # "Precision is over the maximum defined for this asset."
INVALID_TIF = (-1115, "Invalid timeInForce.")
INVALID_ORDER_TYPE = (-1116, "Invalid orderType.")
INVALID_SIDE = (-1117, "Invalid side.")
BAD_INTERVAL = (-1120, "Invalid interval.")
BAD_SYMBOL = (-1121, "Invalid symbol.")
INVALID_LISTEN_KEY = (-1125, "This listenKey does not exist.")
INVALID_PARAMETER = -1130  # "Data sent for parameter '%s' is not valid."
BAD_RECV_WINDOW = (-1131, "recvWindow must be less than 60000")
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = (-2011, "Unknown order sent.")
NO_SUCH_ORDER = (-2013, "Order does not exist.")
BAD_API_KEY_FMT = (-2014, "API-key format invalid.")
REJECTED_MBX_KEY = (-2015, "Invalid API-key, IP, or permissions for action.")

INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
WOULD_MATCH = "Order would immediately match and take."
WOULD_TRIGGER = "Stop price would trigger immediately."
DUPLICATE_ORDER = "Duplicate order sent."
MARKET_CLOSED = "Market is closed."


def error(pair: tuple[int, str], status: int = 400) -> BinanceError:
    return BinanceError(pair[0], pair[1], status)


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        MANDATORY_PARAM_EMPTY_OR_MALFORMED,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


def invalid(name: str) -> BinanceError:
    return BinanceError(INVALID_PARAMETER, f"Data sent for parameter '{name}' is not valid.")


def not_required(name: str) -> BinanceError:
    return BinanceError(PARAM_NOT_REQUIRED, f"Parameter '{name}' sent when not required.")


def filter_failure(name: str) -> BinanceError:
    """``LOT_SIZE``/``PRICE_FILTER`` map to ccxt's InvalidOrder, ``NOTIONAL`` to BadRequest."""
    return BinanceError(-1013, f"Filter failure: {name}")


def order_rejected(msg: str) -> BinanceError:
    return BinanceError(NEW_ORDER_REJECTED, msg)


def bad_symbol() -> BinanceError:
    return error(BAD_SYMBOL)


# -- Cambist's reasons in Binance's words --------------------------------------------------------


def from_reject(reject: RejectCode, *, cancel: bool = False) -> BinanceError:
    """What a core rejection is called on Binance. ``cancel``: the command was a cancel."""
    match reject:
        case RejectCode.UNKNOWN_SYMBOL:
            return bad_symbol()
        case RejectCode.INSUFFICIENT_FUNDS:
            return order_rejected(INSUFFICIENT_BALANCE)
        case RejectCode.POST_ONLY_WOULD_TAKE:
            return order_rejected(WOULD_MATCH)
        case RejectCode.STOP_WOULD_TRIGGER:
            return order_rejected(WOULD_TRIGGER)
        case RejectCode.DUPLICATE_CLIENT_ORDER_ID:
            return order_rejected(DUPLICATE_ORDER)
        case RejectCode.MARKET_HALTED:
            return BinanceError(-1013, MARKET_CLOSED)
        case RejectCode.INVALID_PRICE:
            return filter_failure("PRICE_FILTER")
        case RejectCode.INVALID_QUANTITY | RejectCode.BELOW_MIN_QUANTITY:
            return filter_failure("LOT_SIZE")
        case RejectCode.BELOW_MIN_NOTIONAL:
            return filter_failure("NOTIONAL")
        case RejectCode.ORDER_NOT_FOUND:
            return error(CANCEL_REJECTED if cancel else NO_SUCH_ORDER)
        case RejectCode.TOO_MANY_OPEN_ORDERS:
            return filter_failure("MAX_NUM_ORDERS")
        case RejectCode.ACCOUNT_NOT_ALLOWED:
            return error(REJECTED_MBX_KEY, 401)
        case _:
            return order_rejected(f"Order rejected: {reject.value.lower().replace('_', ' ')}.")


def from_auth_error(auth: AuthError) -> BinanceError:
    """The accounts layer's errors (API keys, permissions, timestamps) in Binance's words."""
    code = auth.code
    if code in ("TIMESTAMP_OUTSIDE_WINDOW", "INVALID_TIMESTAMP"):
        return error(INVALID_TIMESTAMP)
    if code == "INVALID_SIGNATURE":
        return error(INVALID_SIGNATURE)
    if auth.status == 503:
        return BinanceError(DISCONNECTED[0], DISCONNECTED[1], 503)
    if auth.status == 429:
        return BinanceError(TOO_MANY_REQUESTS[0], TOO_MANY_REQUESTS[1], 429)
    return error(REJECTED_MBX_KEY, 401)


# -- exception handlers for the facade's router --------------------------------------------------


def _body(code: int, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg}


def handle_binance_error(_: Request[Any, Any, Any], exc: BinanceError) -> Response[Any]:
    return Response(
        _body(exc.code, exc.msg), status_code=exc.status, headers=exc.headers, media_type=MediaType.JSON
    )


def handle_auth_error(request: Request[Any, Any, Any], exc: AuthError) -> Response[Any]:
    return handle_binance_error(request, from_auth_error(exc))


def handle_unavailable(_: Request[Any, Any, Any], exc: EngineUnavailable) -> Response[Any]:
    if isinstance(exc, OutcomeUnknown):
        code, msg = UNEXPECTED_RESPONSE
    elif isinstance(exc, EngineOverloaded):
        code, msg = SERVER_BUSY
    else:
        code, msg = DISCONNECTED
    return Response(
        _body(code, msg), status_code=503, headers={"Retry-After": "1"}, media_type=MediaType.JSON
    )


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status == 404:
        return Response(_body(UNKNOWN[0], "Not found."), status_code=404, media_type=MediaType.JSON)
    if status == 405:
        return Response(_body(UNKNOWN[0], "Method not allowed."), status_code=405, media_type=MediaType.JSON)
    if status == 413:
        return Response(
            _body(TOO_MANY_PARAMETERS, "Request too large."), status_code=413, media_type=MediaType.JSON
        )
    if status == 429:
        return Response(
            _body(*TOO_MANY_REQUESTS), status_code=429, headers=exc.headers, media_type=MediaType.JSON
        )
    if status >= 500:
        return Response(_body(*UNKNOWN), status_code=status, media_type=MediaType.JSON)
    return Response(
        _body(MANDATORY_PARAM_EMPTY_OR_MALFORMED, str(exc.detail)), status_code=400, media_type=MediaType.JSON
    )


def handle_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    import logging

    logging.getLogger(__name__).exception("unexpected error in the Binance facade", exc_info=exc)
    return Response(_body(*UNKNOWN), status_code=500, media_type=MediaType.JSON)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    BinanceError: handle_binance_error,
    AuthError: handle_auth_error,
    EngineUnavailable: handle_unavailable,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
