"""The Litestar application: routes, dependencies, error handling, OpenAPI, lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.config.response_cache import ResponseCacheConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from cambist import __version__, metrics
from cambist.api.auth import authenticate, authentication_guard, runtime_of
from cambist.api.errors import EXCEPTION_HANDLERS
from cambist.api.routes import account, admin, auth, market, ops, orders
from cambist.api.runtime import Runtime
from cambist.api.strict import strict_body_guard
from cambist.config import Settings, load_settings

REQUEST_BODY_MAX_BYTES = 64 * 1024  # orders are small; anything larger is refused early


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Count requests and time them per route template (never per raw path: bounded labels)."""

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
            handler = scope.get("route_handler")
            route = getattr(handler, "paths", None)
            template = next(iter(route)) if route else "unmatched"
            method = scope.get("method", "GET")
            metrics.HTTP_REQUESTS.labels(method, template, str(status)).inc()
            metrics.HTTP_LATENCY.labels(method, template).observe(time.perf_counter() - started)

    return middleware


def create_app(settings: Settings | None = None, *, demo: bool | None = None) -> Litestar:
    settings = settings or load_settings()
    runtime = Runtime(settings, demo=settings.demo if demo is None else demo)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.runtime = runtime
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    async def provide_runtime(request: Request[Any, Any, Any]) -> Runtime:
        return runtime_of(request)

    return Litestar(
        route_handlers=[
            *auth.ROUTES,
            *account.ROUTES,
            *orders.ROUTES,
            *market.ROUTES,
            *admin.ROUTES,
            *ops.ROUTES,
        ],
        dependencies={"runtime": Provide(provide_runtime), "principal": Provide(authenticate)},
        guards=[authentication_guard, strict_body_guard],  # in this order: 401 before 400
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


def create_app_from_env() -> Litestar:
    """Factory for granian: everything comes from the CAMBIST_* environment."""
    return create_app()
