"""Public ``/api/v3`` endpoints: ping, time, exchangeInfo, depth, trades, aggTrades, klines and
the tickers (binance-compat.md §1-2)."""

from __future__ import annotations

import time
from typing import Any

from litestar import get


@get("/ping", summary="Test connectivity")
async def ping() -> dict[str, Any]:
    return {}


@get("/time", summary="Server time")
async def server_time() -> dict[str, Any]:
    return {"serverTime": time.time_ns() // 1_000_000}


ROUTES: list[Any] = [ping, server_time]
