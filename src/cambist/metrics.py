"""Prometheus metrics of the gateway and the engine, on one registry served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "cambist_http_requests_total",
    "HTTP requests by route and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "cambist_http_request_duration_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
ENGINE_COMMANDS = Counter(
    "cambist_engine_commands_total",
    "Commands applied by kind and result",
    ["kind", "result"],
    registry=REGISTRY,
)
ENGINE_BATCH_SIZE = Histogram(
    "cambist_engine_batch_size",
    "Commands per committed batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=REGISTRY,
)
ENGINE_COMMIT_SECONDS = Histogram(
    "cambist_engine_commit_seconds",
    "Time to write and commit one batch",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)
ENGINE_INBOX_DEPTH = Gauge(
    "cambist_engine_inbox_depth", "Commands waiting in the engine inbox", registry=REGISTRY
)
ENGINE_LAST_SEQ = Gauge(
    "cambist_engine_last_seq", "Sequence number of the last committed command", registry=REGISTRY
)
ENGINE_AVAILABLE = Gauge("cambist_engine_available", "1 when the engine accepts commands", registry=REGISTRY)
TRADES = Counter("cambist_trades_total", "Trades by market", ["symbol"], registry=REGISTRY)
ORDERS = Counter(
    "cambist_orders_total", "Orders accepted by market and type", ["symbol", "type"], registry=REGISTRY
)
INVARIANT_FAILURES = Counter(
    "cambist_invariant_failures_total", "Invariant violations detected", registry=REGISTRY
)
