"""Who is calling: one dependency authenticates every protected route the same way.

A route declares what it needs in its ``opt``: ``permission`` (read / trade / withdraw),
``role`` (admin, support) and ``session_only`` (no API keys). People send a JWT bearer
token; programs sign with an API key (``X-API-KEY``, ``X-TIMESTAMP``, ``X-SIGNATURE``,
optional ``X-RECV-WINDOW``) over timestamp + METHOD + path with query + raw body.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from cambist.accounts.errors import Unauthorized
from cambist.accounts.permissions import Permission, Principal, Role
from cambist.api.deps import RuntimeDep
from cambist.api.errors import bad_request
from cambist.api.runtime import Runtime

# The ``opt`` keys that make a route protected.
PROTECTION_KEYS = ("permission", "role", "session_only")


def raw_path_with_query(request: Request[Any, Any, Any]) -> str:
    """The request target exactly as the client sent it: what the signature covers."""
    scope = request.scope
    raw = scope.get("raw_path")
    # The ASGI spec says raw_path excludes the query string, but some clients and servers
    # (httpx's ASGI transport, Litestar's test client) put it in: keep the path part only,
    # the query comes from query_string either way. A literal "?" cannot be in a path.
    if isinstance(raw, bytes) and raw:
        path = raw.partition(b"?")[0].decode("latin-1")
    else:
        path = scope["path"]
    query = scope.get("query_string") or b""
    return f"{path}?{query.decode('latin-1')}" if query else path


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    """The caller's IP: the peer, or behind a trusted proxy what the proxies say.

    ``X-Forwarded-For`` is believed only when the peer is one of ``CAMBIST_TRUSTED_PROXIES``,
    and then read from the right: each trusted proxy appended the address it saw, so the
    first hop that is not a trusted proxy is the client. Whatever a client wrote at the left
    of the header itself is never reached while a proxy of ours stands after it.
    """
    peer = request.client.host if request.client else None
    settings = runtime_of(request).settings
    if peer is None or not settings.is_trusted_proxy(peer):
        return peer
    hops = [
        hop.strip() for value in request.headers.getall("x-forwarded-for", []) for hop in value.split(",")
    ]
    for hop in reversed(hops):
        if not settings.is_trusted_proxy(hop):
            return hop or None  # not an IP at all: an allowlist then refuses it
    return hops[0] if hops else peer


async def authentication_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Authenticate protected routes before anything else looks at the request.

    Guards run before Litestar parses the body and query, so an unauthenticated caller gets
    401, never a 400 that describes the body a protected route expects.
    """
    if not any(key in handler.opt for key in PROTECTION_KEYS):
        return
    request: Request[Any, Any, Any] = connection  # type: ignore[assignment]
    connection.state.principal = await _authenticate(request, runtime_of(request))


async def authenticate(request: Request[Any, Any, Any], runtime: RuntimeDep) -> Principal:
    """The ``principal`` dependency: what the guard found, or a fresh check for a route the
    guard does not cover."""
    principal = request.state.get("principal")
    if isinstance(principal, Principal):
        return principal
    return await _authenticate(request, runtime)


async def _authenticate(request: Request[Any, Any, Any], runtime: Runtime) -> Principal:
    headers = request.headers
    authorization = headers.get("authorization")
    api_key = headers.get("x-api-key")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("use 'Authorization: Bearer <accessToken>'")
        principal = runtime.accounts.authenticate_access_token(token.strip())
    elif api_key:
        recv_window = headers.get("x-recv-window")
        window_ms: int | None = None
        if recv_window is not None:
            if not recv_window.isascii() or not recv_window.isdigit():
                raise bad_request("INVALID_RECV_WINDOW", "X-RECV-WINDOW must be an integer of milliseconds")
            window_ms = int(recv_window)
        body = await request.body()
        principal = runtime.accounts.authenticate_signed_request(
            api_key,
            headers.get("x-timestamp") or "",
            headers.get("x-signature") or "",
            request.method,
            raw_path_with_query(request),
            body,
            window_ms,
            client_ip(request),
        )
    else:
        raise Unauthorized("authentication required: a bearer token or a signed API-key request")
    opt = request.route_handler.opt
    if opt.get("session_only"):
        principal.require_session()
    if (permission := opt.get("permission")) is not None:
        principal.require(Permission(permission))
    if (role := opt.get("role")) is not None:
        principal.require_role(Role(role))
    return principal


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
