"""Binance Spot API compatibility: ``/api/v3`` REST, ``/ws`` and ``/stream`` market streams and
the user-data streams, over the same services as the native API (no second engine, no second
set of rules). Reference: ``shared/ref/binance-compat.md``; symbols map ``BTCUSDT`` ↔ ``BTC-USDT``.
"""
