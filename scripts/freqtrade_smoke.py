"""Live freqtrade smoke test against an embedded Cambist (issue 4: "freqtrade trades live").

Starts ``cambist serve --demo`` on a fresh data directory, creates a funded user with a
read+trade API key, runs an unmodified ``freqtrade trade`` (live, not dry-run) with the
binance-compat.md §4 ccxt override and an always-enter strategy, then judges the run by
Cambist's own order records (GET /api/v1/orders). freqtrade lives in its own venv (created on
first use, ~500 MB), never in the project's. See scripts/README.md.

    .venv/bin/python scripts/freqtrade_smoke.py [--seconds 240] [--port 8765]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
CAMBIST = REPO / ".venv" / "bin" / "cambist"
ADMIN = {"email": "admin@smoke.test", "password": "admin-password-1"}
TRADER = {"email": "freqtrade@smoke.test", "password": "trader-password-1"}
FUNDS = {"USDT": "10000", "BTC": "0.5", "ETH": "5"}

STRATEGY = '''
from freqtrade.strategy import IStrategy


class AlwaysIn(IStrategy):
    """Enters every candle; leaves after 2 minutes whatever the profit (ROI of -100 %)."""

    INTERFACE_VERSION = 3
    timeframe = "1m"
    minimal_roi = {"2": -1}
    stoploss = -0.05
    startup_candle_count = 0
    process_only_new_candles = False

    def populate_indicators(self, dataframe, metadata):
        return dataframe

    def populate_entry_trend(self, dataframe, metadata):
        dataframe["enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe, metadata):
        dataframe["exit_long"] = 0
        return dataframe
'''


def ccxt_override(http: str, ws: str) -> dict:
    """binance-compat.md §4: spot REST and streams on our host, every other family fails fast."""
    dead = http + "/unsupported"
    families = ["sapi", "sapiV2", "sapiV3", "sapiV4", "fapiPublic", "fapiPrivate", "dapiPublic"]
    families += ["dapiPrivate", "eapiPublic", "eapiPrivate", "papi"]
    return {
        "urls": {
            "api": {
                "public": http + "/api/v3",
                "private": http + "/api/v3",
                "v1": http + "/api/v1",
                **{family: f"{dead}/{family}" for family in families},
                "ws": {"spot": ws + "/ws", "margin": ws + "/ws", "ws-api": {"spot": ws + "/ws-api/v3"}},
            }
        },
        "options": {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "fetchOpenOrders": {"warnWithoutSymbol": False},
        },
    }


def freqtrade_config(work: Path, port: int, key: str, secret: str) -> dict:
    override = ccxt_override(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    return {
        "bot_name": "cambist-smoke",
        "dry_run": False,
        "trading_mode": "spot",
        "stake_currency": "USDT",
        "stake_amount": 50,
        "max_open_trades": 2,
        "tradable_balance_ratio": 0.99,
        "timeframe": "1m",
        "initial_state": "running",
        "db_url": f"sqlite:///{work}/trades.sqlite",
        "entry_pricing": {"price_side": "other", "use_order_book": True, "order_book_top": 1},
        "exit_pricing": {"price_side": "other", "use_order_book": True, "order_book_top": 1},
        "order_types": {
            "entry": "limit",
            "exit": "limit",
            "stoploss": "limit",
            "stoploss_on_exchange": True,
            "stoploss_on_exchange_interval": 30,
        },
        "unfilledtimeout": {"entry": 2, "exit": 2, "unit": "minutes"},
        "exchange": {
            "name": "binance",
            "key": key,
            "secret": secret,
            "only_from_ccxt": True,
            "ccxt_config": override,
            "ccxt_async_config": override,
            "pair_whitelist": ["BTC/USDT", "ETH/USDT"],
        },
        "pairlists": [{"method": "StaticPairList"}],
        "internals": {"process_throttle_secs": 5},
    }


def ensure_venv(venv: Path) -> Path:
    freqtrade = venv / "bin" / "freqtrade"
    if not freqtrade.exists():
        print(f"installing freqtrade into {venv} (several minutes, ~500 MB)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "--prefer-binary", "freqtrade"]
        subprocess.run(pip, check=True)
    return freqtrade


def wait_ready(http: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cambist exited with {proc.returncode}")
        try:
            if httpx.get(f"{http}/api/v3/ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("cambist did not answer /api/v3/ping in time")


def wait_candles(http: str, timeout_s: float = 90) -> None:
    """Until each pair has a closed 1m candle: freqtrade drops the forming one, and a fresh
    server has nothing else (freqtrade would warn "Empty candle (OHLCV) data")."""
    deadline = time.monotonic() + timeout_s
    for symbol in ("BTCUSDT", "ETHUSDT"):
        params = {"symbol": symbol, "interval": "1m", "limit": 2}
        while len(httpx.get(f"{http}/api/v3/klines", params=params, timeout=5).json()) < 2:
            if time.monotonic() > deadline:
                raise SystemExit(f"no closed {symbol} candle in {timeout_s} s")
            time.sleep(1)


def http_requests(http: str) -> dict[tuple[str, str, str], int]:
    """Cambist's own count of HTTP requests by (method, route, status), from /metrics."""
    counts = {}
    for line in httpx.get(f"{http}/metrics", timeout=5).text.splitlines():
        match = re.match(
            r'cambist_http_requests_total\{method="(\w+)",route="([^"]*)",status="(\d+)"\} (\S+)', line
        )
        if match:
            counts[match.group(1, 2, 3)] = int(float(match.group(4)))
    return counts


def login(api: httpx.Client, who: dict) -> dict:
    response = api.post("/auth/login", json=who)
    response.raise_for_status()
    return {"Authorization": "Bearer " + response.json()["accessToken"]}


def setup_trader(http: str, env: dict) -> tuple[str, str]:
    """The admin (CLI), a registered and funded trader, and its read+trade API key."""
    cli = [str(CAMBIST), "admin", "create-user", "--email", ADMIN["email"], "--password", ADMIN["password"]]
    subprocess.run([*cli, "--role", "admin"], env=env, check=True, capture_output=True)
    with httpx.Client(base_url=http + "/api/v1", timeout=10) as api:
        admin = login(api, ADMIN)
        user_id = api.post("/auth/register", json=TRADER).raise_for_status().json()["userId"]
        for asset, amount in FUNDS.items():
            body = {"userId": user_id, "asset": asset, "amount": amount, "reason": "freqtrade smoke"}
            api.post("/admin/credits", json=body, headers=admin).raise_for_status()
        body = {"label": "freqtrade", "permissions": ["read", "trade"]}
        key = api.post("/api-keys", json=body, headers=login(api, TRADER)).raise_for_status().json()
    return key["apiKey"], key["secret"]


def run_freqtrade(freqtrade: Path, work: Path, seconds: int) -> int:
    command = [str(freqtrade), "trade", "--config", str(work / "config.json"), "--strategy", "AlwaysIn"]
    command += ["--userdir", str(work / "user_data"), "--logfile", str(work / "freqtrade.log")]
    print(f"running freqtrade for {seconds} s; log: {work / 'freqtrade.log'}", flush=True)
    with (work / "freqtrade.out").open("w") as out:
        proc = subprocess.Popen(command, cwd=work, stdout=out, stderr=subprocess.STDOUT)
        try:
            return proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # graceful: freqtrade logs its shutdown
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return 0


def cambist_orders(http: str) -> list[dict]:
    with httpx.Client(base_url=http + "/api/v1", timeout=10) as api:
        headers = login(api, TRADER)
        response = api.get("/orders", params={"limit": 100}, headers=headers).raise_for_status()
        return response.json()["data"]


def summarize(orders: list[dict], calls: dict[tuple[str, str, str], int], log: Path) -> bool:
    print("\nHTTP requests Cambist served during the run (method route status: count):")
    for (method, route, status), n in sorted(calls.items(), key=lambda item: item[0][1]):
        if route != "/metrics":
            print(f"  {method} {route} {status}: {n}")
    print(f"\nCambist's orders for {TRADER['email']} ({len(orders)}):")
    for o in sorted(orders, key=lambda o: o["orderId"]):
        stop = f" stop={o['stopPrice']}" if o.get("stopPrice") else ""
        print(
            f"  #{o['orderId']} {o['symbol']} {o['side']} {o['type']} qty={o['quantity']} price={o['price']}"
            f"{stop} status={o['status']} filled={o['filledQuantity']} client={o['clientOrderId']}"
        )
    text = log.read_text() if log.exists() else ""
    errors = [line for line in text.splitlines() if " - ERROR - " in line or " - CRITICAL - " in line]

    def served(route: str) -> bool:
        return calls.get(("GET", route, "200"), 0) > 0

    def some(side: str, stop: bool, status: str | None = "filled") -> bool:
        return any(
            o["side"] == side and bool(o["stopPrice"]) == stop and status in (None, o["status"])
            for o in orders
        )

    checks = {
        "markets loaded (GET /api/v3/exchangeInfo)": served("/api/v3/exchangeInfo"),
        "candles fetched (GET /api/v3/klines)": served("/api/v3/klines"),
        "a buy order filled": some("buy", stop=False),
        "a stop-loss-limit placed on the exchange": some("sell", stop=True, status=None),
        "a sell order filled (the ROI exit)": some("sell", stop=False),
        "no 4xx/5xx answer from Cambist": not [key for key in calls if key[2][0] in "45"],
        "no ERROR line in the freqtrade log": not errors,
    }
    print("\nchecks:")
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    for line in errors[:20]:
        print("  log:", line)
    passed = all(checks.values())
    print("\nRESULT:", "PASS" if passed else "FAIL")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=240, help="how long freqtrade runs (default 240)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/ft-venv"), help="freqtrade's own venv")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ft-smoke"), help="wiped and recreated")
    args = parser.parse_args()

    freqtrade = ensure_venv(args.venv)
    version = subprocess.run([str(freqtrade), "--version"], capture_output=True, text=True).stdout
    version = version.strip().splitlines()[-1]
    ccxt = subprocess.run(
        [str(args.venv / "bin" / "python"), "-c", "import ccxt; print(ccxt.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"{version}, ccxt {ccxt}", flush=True)

    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    (work / "user_data" / "strategies").mkdir(parents=True)
    (work / "user_data" / "strategies" / "always_in.py").write_text(STRATEGY)
    http = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "CAMBIST_DATA_DIR": str(work / "cambist")}
    with (work / "cambist.log").open("w") as server_log:
        server = subprocess.Popen(
            [str(CAMBIST), "serve", "--demo", "--port", str(args.port)],
            cwd=REPO,
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(http, server)
        key, secret = setup_trader(http, env)
        config = freqtrade_config(work, args.port, key, secret)
        (work / "config.json").write_text(json.dumps(config, indent=2))
        print("waiting for the first closed 1m candle", flush=True)
        wait_candles(http)
        before = http_requests(http)
        code = run_freqtrade(freqtrade, work, args.seconds)
        print(f"freqtrade exited with {code}")
        after = http_requests(http)
        calls = {key: n - before.get(key, 0) for key, n in after.items() if n > before.get(key, 0)}
        passed = summarize(cambist_orders(http), calls, work / "freqtrade.log")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(f"logs: {work}/freqtrade.log, {work}/cambist.log")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
