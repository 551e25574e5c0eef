"""Fixtures of the WebSocket tests.

Litestar's ``WebSocketTestSession`` runs the app on the test client's portal thread and
blocks the caller, so these tests use the synchronous ``TestClient``: the app, its engine
and every WebSocket then share the one event loop of that portal. One app per module; tests
isolate themselves with their own users and markets.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from cambist.accounts.passwords import fast_passwords_for_tests
from cambist.api.app import create_app
from cambist.config import Settings, load_settings

API = "/api/v1"
PASSWORD = "correct horse battery staple"
_markets = itertools.count(1)
_emails = itertools.count(1)


def new_email(prefix: str) -> str:
    return f"{prefix}{next(_emails)}-{time.time_ns()}@example.com"


def sign(secret: str, payload: str) -> str:
    """The signing rule of API.md, written out independently of the server's code."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def settings_for(data_dir: Path) -> Settings:
    return load_settings(
        {
            "CAMBIST_DATA_DIR": str(data_dir),
            "CAMBIST_DATABASE_URL": f"sqlite:///{data_dir}/cambist.db",
            "CAMBIST_SECRET_KEY": "test-secret-key-" + "0" * 32,
        }
    )


@dataclass
class User:
    user_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Exchange:
    """Synchronous helpers over HTTP."""

    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client
        runtime = client.app.state.runtime
        email = new_email("ws-admin")
        runtime.accounts.create_user(email, PASSWORD, ["user", "admin"])
        self.admin = self._login(email, 0)

    def _login(self, email: str, user_id: int) -> User:
        response = self.client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return User(user_id, response.json()["accessToken"])

    def user(self, **amounts: str) -> User:
        email = new_email("ws")
        response = self.client.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        user = self._login(email, response.json()["userId"])
        for asset, amount in amounts.items():
            body = {"userId": user.user_id, "asset": asset, "amount": amount, "reason": "test funding"}
            response = self.client.post(f"{API}/admin/credits", json=body, headers=self.admin.headers)
            assert response.status_code == 201, response.text
        return user

    def market(self) -> str:
        base = f"W{next(_markets)}"
        response = self.client.post(
            f"{API}/admin/assets", json={"asset": base, "scale": 8}, headers=self.admin.headers
        )
        assert response.status_code == 201, response.text
        body = {
            "symbol": f"{base}-USDT",
            "baseAsset": base,
            "quoteAsset": "USDT",
            "tickSize": "0.01",
            "lotSize": "0.0001",
            "minQuantity": "0.0001",
            "minNotional": "5",
            "makerFee": "0.001",
            "takerFee": "0.001",
        }
        response = self.client.post(f"{API}/admin/markets", json=body, headers=self.admin.headers)
        assert response.status_code == 201, response.text
        return f"{base}-USDT"

    def place(self, user: User, **order: Any) -> dict[str, Any]:
        response = self.client.post(f"{API}/orders", json=order, headers=user.headers)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def api_key(self, user: User) -> tuple[str, str]:
        body = {"label": "ws", "permissions": ["read"]}
        response = self.client.post(f"{API}/api-keys", json=body, headers=user.headers)
        assert response.status_code == 201, response.text
        return response.json()["apiKey"], response.json()["secret"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    app = create_app(settings_for(tmp_path_factory.mktemp("ws")), demo=False)
    with TestClient(app=app) as client:
        client.app.state.runtime.accounts._passwords = fast_passwords_for_tests()
        yield client


@pytest.fixture(scope="module")
def exchange(client: TestClient[Any]) -> Exchange:
    return Exchange(client)
