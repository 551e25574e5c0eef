"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from cambist import metrics
from cambist.api.deps import RuntimeDep


@get("/health", tags=["operations"], summary="The process is alive", include_in_schema=True)
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", tags=["operations"], summary="Engine caught up and store reachable")
async def ready(runtime: RuntimeDep) -> Response[dict[str, Any]]:
    problems = []
    if not runtime.started or not runtime.link.available:
        problems.append("engine not available")
    else:
        try:
            await runtime.read(_ping, runtime)
        except Exception as error:  # any store failure means not ready
            problems.append(f"store unreachable: {type(error).__name__}")
    if problems:
        return Response({"code": "NOT_READY", "message": "; ".join(problems)}, status_code=503)
    return Response({"status": "ready", "sequence": runtime.link.last_seq}, status_code=200)


def _ping(runtime: RuntimeDep) -> None:
    with runtime.db.connect() as connection:
        connection.execute(text("SELECT 1"))


@get("/metrics", tags=["operations"], summary="Prometheus metrics", media_type=MediaType.TEXT)
async def metrics_endpoint(runtime: RuntimeDep) -> Response[bytes]:
    metrics.ENGINE_INBOX_DEPTH.set(runtime.link.inbox_depth())
    metrics.ENGINE_AVAILABLE.set(1 if runtime.link.available else 0)
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


@get("/openapi.json", tags=["operations"], summary="The OpenAPI document", include_in_schema=False)
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi_schema.to_schema()
    return schema


ROUTES = [health, ready, metrics_endpoint, openapi_json]
