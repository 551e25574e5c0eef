"""Binance WebSocket market streams (``/ws/...``, ``/stream``) and user-data streams
(``/ws-api/v3``, ``/ws/<listenKey>``) (binance-compat.md §4)."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
