"""Signed ``/api/v3`` endpoints: account, order, openOrders, allOrders, myTrades and the
listenKey user-data stream (binance-compat.md §1-3)."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
