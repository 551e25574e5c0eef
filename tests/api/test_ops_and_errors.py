"""Operations endpoints, the OpenAPI document, and the error shape of unknown routes and methods."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from .conftest import FundedUser
from .support import assert_error, placed

pytestmark = pytest.mark.asyncio(loop_scope="module")

Client = AsyncTestClient[Any]

# Every route of API.md that exists today: (method, OpenAPI path).
ROUTES = [
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/account"),
    ("get", "/api/v1/account/balances"),
    ("get", "/api/v1/account/trades"),
    ("post", "/api/v1/api-keys"),
    ("get", "/api/v1/api-keys"),
    ("delete", "/api/v1/api-keys/{key_id}"),
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders"),
    ("delete", "/api/v1/orders"),
    ("get", "/api/v1/orders/{order_id}"),
    ("delete", "/api/v1/orders/{order_id}"),
    ("get", "/api/v1/markets"),
    ("get", "/api/v1/markets/{symbol}"),
    ("get", "/api/v1/ticker"),
    ("get", "/api/v1/ticker/{symbol}"),
    ("get", "/api/v1/orderbook/{symbol}"),
    ("get", "/api/v1/klines/{symbol}"),
    ("get", "/api/v1/trades/{symbol}"),
    ("post", "/api/v1/admin/credits"),
    ("post", "/api/v1/admin/assets"),
    ("post", "/api/v1/admin/markets"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
]


async def test_health(client: Client) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready(client: Client) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200, response.text


async def test_metrics_in_prometheus_text_format(client: Client, funded_user: FundedUser) -> None:
    user = await funded_user(USDT="100")
    await placed(client, user, side="buy", type="limit", quantity="0.001", price="10000")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE cambist_engine_commands_total counter" in text
    samples = re.findall(r"^cambist_engine_commands_total\{([^}]*)\} (\S+)$", text, re.MULTILINE)
    placed_ok = [float(v) for labels, v in samples if "PlaceOrder" in labels and '"ok"' in labels]
    assert placed_ok and placed_ok[0] >= 1
    # request metrics are labelled by route template, never by raw path
    assert "/api/v1/orders/{order_id:int}" in text or "/api/v1/orders" in text
    assert "/api/v1/orders/12345" not in text


async def test_openapi_document_lists_every_route(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = json.loads(response.text)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Cambist"
    paths = document["paths"]
    missing = [(m, p) for m, p in ROUTES if m not in paths.get(p, {})]
    assert missing == []
    # and every route the app serves under /api/v1 is documented
    served = {
        (method.lower(), re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
        for route in client.app.routes
        for method in getattr(route, "methods", ())
        if route.path.startswith("/api/") and method not in ("HEAD", "OPTIONS")
    }
    assert served - {(m, p) for p in paths for m in paths[p]} == set()


async def test_openapi_documents_money_as_strings(client: Client) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    order = next(s for name, s in schemas.items() if name.endswith("PlaceOrderRequest"))
    for field in ("quantity", "price", "quoteQuantity"):
        text = json.dumps(order["properties"][field])
        assert '"string"' in text and '"number"' not in text and '"integer"' not in text


async def test_docs_page(client: Client) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]


@pytest.mark.parametrize(
    "path", ["/nope", "/api/v1/nope", "/api/v2/orders", "/api/v1/orders/1/fills", "/api/v1/market"]
)
async def test_unknown_route_is_404_in_the_error_shape(client: Client, path: str) -> None:
    assert_error(await client.get(path), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/orders"),
        ("PATCH", "/api/v1/markets"),
        ("GET", "/api/v1/admin/credits"),
        ("DELETE", "/api/v1/markets/BTC-USDT"),
        ("POST", "/health"),
        ("GET", "/api/v1/auth/login"),
    ],
)
async def test_wrong_method_is_405_in_the_error_shape(client: Client, method: str, path: str) -> None:
    assert_error(await client.request(method, path), 405, "METHOD_NOT_ALLOWED")
