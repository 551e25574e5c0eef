"""What the live ccxt test needs besides the tests: a running Cambist with demo liquidity, a
funded user with an API key, the ccxt configuration of binance-compat.md §4, ccxt's own
validators (shipped in its wheel, §5) and the server's request counter for the surface check.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import httpx
from prometheus_client.parser import text_string_to_metric_families

from e2e.support import API, ServerProcess, auth, cli, expect, server_env

PASSWORD = "correct-Horse-battery-9"
# Far more than the tests spend: every scenario trades 0.001 BTC or a few ETH-USDT lots.
FUNDING = {"USDT": "200000", "BTC": "3", "ETH": "30"}
WATCH_TIMEOUT_S = 40.0  # each ccxt.pro watch test loops 15 s; a stall must fail, not hang
HTTP_REQUESTS_METRIC = "cambist_http_requests"  # the counter's family name (``_total`` is the sample)

# ccxt API families other than spot REST: pointed at a path the facade does not serve, so a call
# to any of them is a 404 on our host (the surface check sees it) and never reaches binance.com.
UNSUPPORTED_FAMILIES = (
    "sapi",
    "sapiV2",
    "sapiV3",
    "sapiV4",
    "dapiPublic",
    "dapiPrivate",
    "dapiPrivateV2",
    "dapiData",
    "eapiPublic",
    "eapiPrivate",
    "fapiPublic",
    "fapiPublicV2",
    "fapiPublicV3",
    "fapiPrivate",
    "fapiPrivateV2",
    "fapiPrivateV3",
    "fapiData",
    "papi",
    "papiV2",
)
UNSUPPORTED_WS = ("linear", "inverse", "stock", "option", "optionMarket", "optionPrivate", "papi")


# ---------------------------------------------------------------- the server and its user


@dataclass
class Live:
    """The running server and the user the tests trade as."""

    server: ServerProcess
    user_id: int
    token: str
    api_key: str
    secret: str

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1)


def start_server(data_dir: Path) -> ServerProcess:
    """``cambist serve --demo`` on SQLite in ``data_dir``: the demo market maker keeps
    BTC-USDT, ETH-USDT and ETH-BTC two-sided and prints trades."""
    env = server_env(data_dir)
    server = ServerProcess(env, data_dir / "server.log", command=("serve", "--demo"))
    server.start()
    try:
        server.wait_ready()
    except BaseException:
        server.kill()
        raise
    return server


async def provision(server: ServerProcess) -> Live:
    """A registered user, funded by an administrator through the credit endpoint, with a
    read+trade API key (API.md: Authentication, Administration)."""
    tag = secrets.token_hex(4)
    user_email, admin_email = f"ccxt-{tag}@binance.example.com", f"admin-{tag}@binance.example.com"
    created = await asyncio.to_thread(
        cli,
        server.env,
        "admin",
        "create-user",
        "--email",
        admin_email,
        "--password",
        PASSWORD,
        "--role",
        "admin",
    )
    assert created.returncode == 0, created.stdout + created.stderr
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as client:
        credentials = {"email": user_email, "password": PASSWORD}
        user_id = expect(await client.post(f"{API}/auth/register", json=credentials), 201)["userId"]
        token = expect(await client.post(f"{API}/auth/login", json=credentials), 200)["accessToken"]
        admin_credentials = {"email": admin_email, "password": PASSWORD}
        admin_token = expect(await client.post(f"{API}/auth/login", json=admin_credentials), 200)[
            "accessToken"
        ]
        for asset, amount in FUNDING.items():
            credit = {
                "userId": user_id,
                "asset": asset,
                "amount": amount,
                "reason": "ccxt test funding",
                "creditId": f"ccxt-{asset}-{user_id}-{tag}",
            }
            expect(await client.post(f"{API}/admin/credits", json=credit, headers=auth(admin_token)), 201)
        key = expect(
            await client.post(
                f"{API}/api-keys",
                json={"label": "ccxt", "permissions": ["read", "trade"]},
                headers=auth(token),
            ),
            201,
        )
    return Live(server, user_id, token, key["apiKey"], key["secret"])


async def wait_for_liquidity(base_url: str, symbols: tuple[str, ...], timeout_s: float = 30.0) -> None:
    """Until the demo quotes both sides of every market and has printed a trade on each (the
    native API, so this does not depend on the facade under test)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    pending = set(symbols)
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as client:
        while pending:
            for symbol in sorted(pending):
                book = (await client.get(f"{API}/orderbook/{symbol}")).json()
                trades = (await client.get(f"{API}/trades/{symbol}")).json()
                rows = trades.get("data", trades) if isinstance(trades, dict) else trades
                if book.get("bids") and book.get("asks") and rows:
                    pending.discard(symbol)
            if pending and asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no two-sided book and trades on {sorted(pending)} in {timeout_s} s")
            if pending:
                await asyncio.sleep(0.25)


# ---------------------------------------------------------------- ccxt


def ccxt_config(live: Live, **overrides: Any) -> dict[str, Any]:
    """binance-compat.md §4, with every family but spot REST pointed at /unsupported/ on our host,
    and `has` swap/future/option off for ccxt's test_load_markets (§5 note 7)."""
    base, ws = live.base_url, live.ws_url
    api: dict[str, Any] = {
        "public": base + "/api/v3",
        "private": base + "/api/v3",
        "v1": base + "/api/v1",
        **{family: f"{base}/unsupported/{family}" for family in UNSUPPORTED_FAMILIES},
        "ws": {
            "spot": ws + "/ws",
            "margin": ws + "/ws",
            **{family: f"{ws}/unsupported/{family}" for family in UNSUPPORTED_WS},
            "ws-api": {
                "spot": ws + "/ws-api/v3",
                "linear": ws + "/unsupported/ws-fapi",
                "inverse": ws + "/unsupported/ws-dapi",
            },
        },
    }
    config: dict[str, Any] = {
        "apiKey": live.api_key,
        "secret": live.secret,
        "enableRateLimit": False,
        "timeout": 15_000,
        "urls": {"api": api},
        "has": {"swap": False, "future": False, "option": False},
        "options": {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "fetchOpenOrders": {"warnWithoutSymbol": False},
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def rest_client(live: Live, **overrides: Any) -> ccxt_async.binance:
    return ccxt_async.binance(ccxt_config(live, **overrides))


def pro_client(live: Live, **overrides: Any) -> ccxt_pro.binance:
    return ccxt_pro.binance(ccxt_config(live, **overrides))


# ---------------------------------------------------------------- ccxt's validators (§5)


def async_test(name: str) -> Callable[..., Awaitable[Any]]:
    """``ccxt.test.exchange.async.<name>.<name>`` (``async`` is a keyword: no plain import)."""
    module = importlib.import_module(f"ccxt.test.exchange.async.{name}")
    function: Callable[..., Awaitable[Any]] = getattr(module, name)
    return function


def pro_test(name: str) -> Callable[..., Awaitable[Any]]:
    module = importlib.import_module(f"ccxt.pro.test.Exchange.{name}")
    function: Callable[..., Awaitable[Any]] = getattr(module, name)
    return function


def _fee_numbers(fee: Any) -> Any:
    if isinstance(fee, dict):
        fee = dict(fee)
        for field in ("cost", "rate"):
            if isinstance(fee.get(field), str):
                fee[field] = float(fee[field])
    return fee


def normalise_ws_order(order: dict[str, Any]) -> dict[str, Any]:
    """A copy with ``fee.cost`` (and ``fees``, and the trades' fees) as numbers: ccxt's
    ``parse_ws_order`` leaves it a string, which its own ``test_order`` refuses (§5 note 6)."""
    order = copy.deepcopy(order)
    order["fee"] = _fee_numbers(order.get("fee"))
    if isinstance(order.get("fees"), list):
        order["fees"] = [_fee_numbers(fee) for fee in order["fees"]]
    for trade in order.get("trades") or []:
        trade["fee"] = _fee_numbers(trade.get("fee"))
        if isinstance(trade.get("fees"), list):
            trade["fees"] = [_fee_numbers(fee) for fee in trade["fees"]]
    return order


# ---------------------------------------------------------------- the surface check


RequestCounts = Counter[tuple[str, str, str]]


async def http_requests(base_url: str) -> RequestCounts:
    """``cambist_http_requests_total`` by (method, route template, status), from /metrics."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    counts: RequestCounts = Counter()
    for family in text_string_to_metric_families(response.text):
        if family.name != HTTP_REQUESTS_METRIC:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                counts[(labels["method"], labels["route"], labels["status"])] += int(sample.value)
    return counts


def delta(after: RequestCounts, before: RequestCounts) -> RequestCounts:
    return Counter({key: after[key] - before.get(key, 0) for key in after if after[key] > before.get(key, 0)})


# ---------------------------------------------------------------- small helpers


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


__all__ = [
    "FUNDING",
    "WATCH_TIMEOUT_S",
    "Live",
    "async_test",
    "ccxt_config",
    "dec",
    "delta",
    "http_requests",
    "normalise_ws_order",
    "pro_client",
    "pro_test",
    "provision",
    "rest_client",
    "start_server",
    "wait_for_liquidity",
]
