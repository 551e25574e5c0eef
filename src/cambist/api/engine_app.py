"""The engine process (``cambist engine``): the engine node plus its Redis server, and a small
HTTP surface for probes and Prometheus (``/health``, ``/ready``, ``/metrics``) on CAMBIST_PORT.

No API here: clients reach the engine only through gateways.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, MediaType, Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cambist import metrics
from cambist.api.app import GIL_SWITCH_INTERVAL_S
from cambist.bus.redis_engine import RedisEngineServer
from cambist.config import Settings, load_settings
from cambist.engine.node import EngineNode
from cambist.store.base import create_db_engine


class EngineProcess:
    def __init__(self, settings: Settings) -> None:
        if not settings.redis_url:
            raise ValueError("the engine process needs CAMBIST_REDIS_URL")
        self.db = create_db_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        self.node = EngineNode(settings, self.db, demo=settings.demo)
        self.server = RedisEngineServer(
            self.node.engine,
            settings.redis_url,
            settings.redis_namespace,
            command_timeout_ms=settings.command_timeout_ms,
        )
        self.started = False

    async def start(self) -> None:
        await self.node.start()
        await self.server.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        await self.server.stop()  # first: gateways learn at once that the engine is going
        await self.node.stop()
        self.db.dispose()


def _process(request: Request[Any, Any, Any]) -> EngineProcess:
    process: EngineProcess = request.app.state.engine_process
    return process


@get("/health", summary="The process is alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", summary="The engine takes commands")
async def ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    process = _process(request)
    engine = process.node.engine
    if not process.started or not engine.available:
        return Response({"code": "NOT_READY", "message": "engine not available"}, status_code=503)
    return Response({"status": "ready", "sequence": engine.last_seq}, status_code=200)


@get("/metrics", summary="Prometheus metrics", media_type=MediaType.TEXT)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    engine = _process(request).node.engine
    metrics.ENGINE_INBOX_DEPTH.set(engine.inbox_depth())
    metrics.ENGINE_AVAILABLE.set(1 if engine.available else 0)
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


def create_engine_app(settings: Settings | None = None) -> Litestar:
    process = EngineProcess(settings or load_settings())

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.engine_process = process
        await process.start()
        try:
            yield
        finally:
            await process.stop()

    return Litestar(
        route_handlers=[health, ready, metrics_endpoint], lifespan=[lifespan], openapi_config=None
    )


def create_engine_app_from_env() -> Litestar:
    """Factory for granian (``cambist engine``)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    return create_engine_app()
