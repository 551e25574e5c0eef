"""deploy/nginx in front of two Cambist backends: TLS, redirects, load balancing, WebSocket,
passive health checks, and no retry of a sent POST (see tests/deploy/conftest.py)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from e2e.support import API, free_port

from .conftest import Backends, Nginx, StartNginx, host_port, load_render

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


def upstreams_of(lines: list[str]) -> list[str]:
    """The ``upstream=`` field of each access-log line (``a:1, b:2`` when nginx went on)."""
    found = []
    for line in lines:
        match = re.search(r"upstream=(.*?) upstream_status=", line)
        if match:
            found.append(match.group(1))
    return found


def logged_upstreams(nginx: Nginx, count: int, timeout_s: float = 5.0) -> list[str]:
    """The upstreams of the access log once it holds ``count`` proxied requests (nginx writes a
    line after the response went out, so the last one may lag)."""
    deadline = time.monotonic() + timeout_s
    while len(used := upstreams_of(nginx.access_lines())) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return used


def test_render_fills_every_placeholder_and_refuses_a_missing_one() -> None:
    render = load_render()
    values = render.values_for(
        server_name="exchange.example.com",
        gateways=["10.0.0.11:8000", "10.0.0.12:8000"],
        certificate="/etc/ssl/cambist.pem",
        certificate_key="/etc/ssl/cambist.key",
    )
    text = render.render(values)
    assert "${NGINX_" not in text
    assert "server 10.0.0.11:8000 max_fails=3 fail_timeout=10s;" in text
    assert "return 301 https://exchange.example.com$request_uri;" in text
    with pytest.raises(KeyError, match="NGINX_TLS_CERTIFICATE_KEY"):
        render.render({k: v for k, v in values.items() if k != "NGINX_TLS_CERTIFICATE_KEY"})
    with pytest.raises(ValueError):
        render.upstream_servers(["10.0.0.11"])


def test_health_markets_and_headers_over_https(two_backends: list[str], start_nginx: StartNginx) -> None:
    nginx = start_nginx(two_backends)
    with nginx.client() as client:
        health = client.get("/health")
        assert health.status_code == 200, health.text
        markets = client.get(f"{API}/markets")
        assert markets.status_code == 200, markets.text
        assert "BTC-USDT" in {m["symbol"] for m in markets.json()["data"]}
        assert markets.headers["server"] == "nginx"  # server_tokens off: no version
        assert markets.headers["strict-transport-security"].startswith("max-age=")
        assert re.fullmatch(r"[0-9a-f]{32}", markets.headers["x-request-id"])
        # Prometheus metrics stay on the private network.
        metrics = client.get("/metrics")
        assert metrics.status_code == 404
        assert metrics.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3(two_backends: list[str], start_nginx: StartNginx, version: ssl.TLSVersion) -> None:
    nginx = start_nginx(two_backends)
    context = nginx.tls.client_context()
    context.minimum_version = context.maximum_version = version
    with (
        socket.create_connection(("127.0.0.1", nginx.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls_socket,
    ):
        assert tls_socket.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]


def test_plain_http_redirects_to_https(two_backends: list[str], start_nginx: StartNginx) -> None:
    nginx = start_nginx(two_backends)
    with httpx.Client(timeout=10.0) as client:
        response = client.get(f"{nginx.http_url}{API}/markets?x=1", headers={"Host": "evil.example"})
    assert response.status_code == 301
    assert response.headers["location"] == f"{nginx.https_url}{API}/markets?x=1"


def test_large_bodies_are_refused_by_nginx(two_backends: list[str], start_nginx: StartNginx) -> None:
    nginx = start_nginx(two_backends)
    with nginx.client() as client:
        response = client.post(
            f"{API}/orders", content=b"x" * (65 * 1024), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_requests_are_spread_over_both_backends(two_backends: list[str], start_nginx: StartNginx) -> None:
    nginx = start_nginx(two_backends)
    with nginx.client() as client:
        for _ in range(20):
            response = client.get(f"{API}/markets")
            assert response.status_code == 200, response.text
    used = logged_upstreams(nginx, 20)
    assert len(used) == 20, nginx.access_lines()
    counts = {backend: used.count(backend) for backend in map(host_port, two_backends)}
    assert all(count >= 5 for count in counts.values()), counts


def test_websocket_subscription_over_tls(two_backends: list[str], start_nginx: StartNginx) -> None:
    try:
        from websockets.sync.client import connect
    except ImportError:  # pragma: no cover
        pytest.fail("the websockets package is missing: it is in the dev extra (pip install -e '.[dev]')")
    nginx = start_nginx(two_backends)
    url = f"wss://127.0.0.1:{nginx.https_port}/ws"
    with connect(url, ssl=nginx.tls.client_context(), open_timeout=10, close_timeout=2) as ws:
        ws.send(json.dumps({"op": "subscribe", "channels": ["orderbook:BTC-USDT"]}))
        frames = []
        deadline = time.monotonic() + 10
        while not any(f.get("type") == "snapshot" for f in frames) and time.monotonic() < deadline:
            frames.append(json.loads(ws.recv(timeout=10)))
        assert {"type": "subscribed", "channels": ["orderbook:BTC-USDT"]} in frames, frames
        snapshot = next(f for f in frames if f.get("type") == "snapshot")
        assert snapshot["channel"] == "orderbook:BTC-USDT"
        ws.send(json.dumps({"op": "ping"}))
        while (frame := json.loads(ws.recv(timeout=10))).get("type") != "pong":
            assert frame.get("type") in ("update", "ping"), frame


def test_login_order_round_trip_and_client_address(
    killable_backends: Backends, start_nginx: StartNginx
) -> None:
    """Register, log in, get funded, place and read an order, all through nginx; an API key
    allowed for the client's address only works from that address, so the backends see the
    client (from X-Forwarded-For), not nginx. Over one backend until they share a store."""
    backends = killable_backends
    nginx = start_nginx(backends.urls if backends.shared_state else backends.urls[:1])
    admin_email = f"admin-{secrets.token_hex(4)}@example.com"
    made = backends.cli(
        "admin", "create-user", "--email", admin_email, "--password", PASSWORD, "--role", "admin"
    )
    assert made.returncode == 0, made.stderr
    email = f"trader-{secrets.token_hex(4)}@example.com"
    with nginx.client() as client:
        registered = client.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        user_id = registered.json()["userId"]

        def token(who: str) -> dict[str, str]:
            response = client.post(f"{API}/auth/login", json={"email": who, "password": PASSWORD})
            assert response.status_code == 200, response.text
            return {"Authorization": f"Bearer {response.json()['accessToken']}"}

        admin, user = token(admin_email), token(email)
        funding = {"userId": user_id, "asset": "USDT", "amount": "10000", "reason": "nginx test"}
        credited = client.post(f"{API}/admin/credits", json=funding, headers=admin)
        assert credited.status_code == 201, credited.text
        order = {"symbol": "BTC-USDT", "side": "buy", "type": "limit", "quantity": "0.01", "price": "30000"}
        placed = client.post(f"{API}/orders", json=order, headers=user)
        assert placed.status_code == 201, placed.text
        read = client.get(f"{API}/orders/{placed.json()['orderId']}", headers=user)
        assert read.status_code == 200, read.text
        assert read.json()["status"] == "new"

        key = client.post(
            f"{API}/api-keys",
            json={"label": "ci", "permissions": ["read"], "ipAllowlist": ["127.0.0.2"]},
            headers=user,
        )
        assert key.status_code == 201, key.text
        api_key, secret = key.json()["apiKey"], key.json()["secret"]

    def signed_balances(source: str) -> int:
        path = f"{API}/account/balances"
        timestamp = str(int(time.time() * 1000))
        signature = hmac.new(secret.encode(), f"{timestamp}GET{path}".encode(), hashlib.sha256).hexdigest()
        headers = {"X-API-KEY": api_key, "X-TIMESTAMP": timestamp, "X-SIGNATURE": signature}
        with nginx.client(
            transport=httpx.HTTPTransport(local_address=source, verify=nginx.tls.client_context())
        ) as c:
            return c.get(path, headers=headers).status_code

    assert signed_balances("127.0.0.2") == 200
    assert signed_balances("127.0.0.3") == 403


def test_gets_go_on_when_a_backend_dies(killable_backends: Backends, start_nginx: StartNginx) -> None:
    nginx = start_nginx(killable_backends.urls)
    dead = host_port(killable_backends.urls[0])
    killable_backends.kill(0)
    with nginx.client() as client:
        for _ in range(20):
            response = client.get(f"{API}/markets")
            assert response.status_code == 200, response.text
            assert client.get("/health").status_code == 200
    used = logged_upstreams(nginx, 20)
    # The dead one was tried (and passed over within the same request), then left out.
    assert any(u.startswith(f"{dead}, ") for u in used), used
    assert sum(dead in u for u in used) <= 3, used  # max_fails=3, then out for fail_timeout


class BlackHole:
    """An upstream that reads a request's head, records it, and closes without answering:
    a gateway that died after receiving the request."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[str] = []
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                head = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in head:
                        chunk = connection.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                if head:
                    self.requests.append(head.split(b"\r\n", 1)[0].decode())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def black_holes() -> Iterator[list[BlackHole]]:
    holes = [BlackHole(), BlackHole()]
    yield holes
    for hole in holes:
        hole.close()


def test_a_sent_post_is_never_retried_on_another_backend(
    black_holes: list[BlackHole], start_nginx: StartNginx
) -> None:
    nginx = start_nginx([hole.url for hole in black_holes], max_fails=0)
    with nginx.client() as client:
        order = {"symbol": "BTC-USDT", "side": "buy", "type": "limit", "quantity": "1", "price": "1"}
        posted = client.post(f"{API}/orders", json=order)
        assert posted.status_code == 503
        assert posted.json()["code"] == "SERVICE_UNAVAILABLE"
        posts = [r for hole in black_holes for r in hole.requests if r.startswith("POST ")]
        assert len(posts) == 1, posts  # one backend got it; nginx did not send it to the other
        got = client.get(f"{API}/markets")
        assert got.status_code == 503
        gets = [r for hole in black_holes for r in hole.requests if r.startswith("GET ")]
        assert len(gets) == 2, gets  # an idempotent GET is tried on the next backend
