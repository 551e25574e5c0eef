"""Request bodies are decoded strictly: a JSON value of the wrong type is a 400.

Litestar converts handler arguments in msgspec's lax mode. That suits path and query strings
(``"10"`` becomes ``10``) but would also let a body say ``"postOnly": 1`` (placed as a
post-only order) or ``"userId": "7"``. This guard decodes the body of every route that takes
a ``schemas.Request`` once more, strictly, before Litestar does; a failure leaves as the same
``{code, message}`` as any other validation failure. Bodies are small (64 KiB at most), so the
second decode costs next to nothing.
"""

from __future__ import annotations

import re
import types
from typing import Any, Union, get_args, get_origin

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from cambist.api.errors import FIELD_CODES, bad_request
from cambist.api.schemas import Request as RequestBody

_AT_RE = re.compile(r" - at `\$\.?([^`]*)`$")


def _body_type(handler: BaseRouteHandler) -> tuple[type[RequestBody] | None, bool]:
    """The request struct a handler's ``data`` takes, and whether the body may be absent."""
    parameter = handler.parsed_fn_signature.parameters.get("data")
    if parameter is None:
        return None, False
    annotation = parameter.annotation
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(get_args(annotation))
        annotation = members[0] if len(members) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, RequestBody):
        return annotation, optional
    return None, False


async def strict_body_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    body_type, optional = _body_type(handler)
    if body_type is None:
        return
    body = await connection.body()  # type: ignore[attr-defined]
    if optional and not body.strip():
        return
    try:
        msgspec.json.decode(body, type=body_type, strict=True)
    except msgspec.ValidationError as error:
        text = str(error)
        match = _AT_RE.search(text)
        path = match.group(1) if match else ""
        field = path.split(".")[0].split("[")[0]
        reason = _AT_RE.sub("", text)
        raise bad_request(
            FIELD_CODES.get(field, "INVALID_REQUEST"), f"{path}: {reason}" if path else reason
        ) from None
    except msgspec.DecodeError:
        raise bad_request("INVALID_JSON", "the body is not valid JSON") from None
