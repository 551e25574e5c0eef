"""The facade's routes, under their own error handlers (``{code, msg}``)."""

from __future__ import annotations

from typing import Any

from litestar import Router

from cambist.binance import errors, private, public, streams


def rest_router() -> Router:
    return Router(
        path="/api/v3",
        route_handlers=[*public.ROUTES, *private.ROUTES],
        exception_handlers=errors.EXCEPTION_HANDLERS,
        tags=["binance compatibility"],
    )


def routes() -> list[Any]:
    return [rest_router(), *streams.ROUTES]
