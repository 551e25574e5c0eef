"""The Litestar application: routes, dependencies, error handling, OpenAPI, lifespan."""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.config.response_cache import ResponseCacheConfig
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from cambist import __version__, metrics
from cambist.api.auth import authenticate, authentication_guard, runtime_of
from cambist.api.errors import EXCEPTION_HANDLERS
from cambist.api.routes import account, admin, auth, market, ops, orders
from cambist.api.runtime import Runtime
from cambist.api.strict import strict_body_guard
from cambist.binance import routes as binance_routes
from cambist.config import Settings, load_settings
from cambist.stream import ws

REQUEST_BODY_MAX_BYTES = 64 * 1024  # orders are small; anything larger is refused early


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Count requests and time them per route template (never per raw path: bounded labels)."""

    # The labelled children, looked up once per (method, route, status): ``labels()`` takes a
    # lock and builds a key at every call. Bounded: routes, methods and statuses are finite.
    children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            # Litestar's full route template (a router's prefix included, e.g. /api/v3/order).
            template: str = scope.get("path_template") or "unmatched"  # type: ignore[assignment]
            method: str = str(scope.get("method", "GET"))
            pair = children.get((method, template, status))
            if pair is None:
                pair = children[(method, template, status)] = (
                    metrics.HTTP_REQUESTS.labels(method, template, str(status)),
                    metrics.HTTP_LATENCY.labels(method, template),
                )
            pair[0].inc()
            pair[1].observe(time.perf_counter() - started)

    return middleware


async def request_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Both guards as one: Litestar passes ``copy(handler)`` to every guard of every request
    (litestar/handlers/base.py, authorize_connection), ~15 us each, public GETs included."""
    await authentication_guard(connection, handler)  # in this order: 401 before 400
    await strict_body_guard(connection, handler)


class CambistApp(Litestar):
    """Litestar, keeping the server's own ``send`` of each WebSocket in its scope.

    Every send through Litestar passes three wrappers (the exception middleware's
    ``capture_response_started``, ``WebSocket.send_wrapper``, ``send_data``): about 40 % of the
    CPU of fanning a trade out to 1,000 subscribers. Once a socket is accepted, its data
    frames go straight to the server (``cambist.stream.ws``); accept and close still go
    through Litestar, which tracks the connection state.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope[ws.RAW_SEND_KEY] = send
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None, *, demo: bool | None = None, gateway: bool = False
) -> Litestar:
    """The API. ``gateway=True``: the engine is another process, reached over Redis."""
    settings = settings or load_settings()
    runtime = Runtime(settings, demo=settings.demo if demo is None else demo, gateway=gateway)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.runtime = runtime
        await runtime.start()
        # Everything built at start lives for the whole process: keep it out of the garbage
        # collector's scans, and collect the young generation less often (requests allocate
        # many short-lived objects, few cycles).
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        try:
            yield
        finally:
            await runtime.stop()

    async def provide_runtime(request: Request[Any, Any, Any]) -> Runtime:
        return runtime_of(request)

    return CambistApp(
        route_handlers=[
            *auth.ROUTES,
            *account.ROUTES,
            *orders.ROUTES,
            *market.ROUTES,
            *admin.ROUTES,
            *ops.ROUTES,
            *ws.ROUTES,
            *binance_routes.routes(),
        ],
        dependencies={"runtime": Provide(provide_runtime), "principal": Provide(authenticate)},
        guards=[request_guard],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        middleware=[metrics_middleware],
        openapi_config=OpenAPIConfig(
            title="Cambist",
            version=__version__,
            description="Native API of the Cambist exchange. Money is always a decimal string.",
            path="/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
        ),
        request_max_body_size=REQUEST_BODY_MAX_BYTES,
        response_cache_config=ResponseCacheConfig(),
        debug=False,
    )


# How often the interpreter lets another thread take the GIL (default 5 ms). The engine's
# writer thread needs it often: with the event loop busy, a 5 ms slice per hand-over made
# batch commits wait on the API instead of the disk.
GIL_SWITCH_INTERVAL_S = 0.0005


def create_app_from_env() -> Litestar:
    """Factory for granian: everything comes from the CAMBIST_* environment."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    return create_app()


def create_gateway_app_from_env() -> Litestar:
    """Factory for granian (``cambist gateway``): the API without an engine of its own."""
    return create_app(gateway=True)
