"""``RedisReplayGuard``: the replay guard shared by every gateway replica (distributed mode).

One ``SET <namespace>:replay:<sha256(key)> 1 NX PX <ttl>`` per call answers ``first_seen``
atomically across all replicas and threads: the first caller creates the key, everyone else
finds it until Redis expires it. Notes:

- Keys are hashed: a long ``api_key:signature`` becomes a 64-hex-digit key, and neither the
  API key nor the signature is ever stored in Redis or written to the log.
- Expiry runs on Redis's clock, not the gateways' (``now_ms`` is ignored): replicas with
  skewed clocks still agree. ``ttl_ms`` below 1 is raised to 1 ms.
- **Fails closed.** If Redis cannot answer (unreachable, timeout, out of memory, read-only
  replica: any ``redis.RedisError``), ``first_seen`` raises ``ServiceUnavailable`` (503
  ``SERVICE_UNAVAILABLE``): the request is refused, never let through unchecked.
- ``from_url`` builds a client with short timeouts and **no automatic retries**: a retried
  ``SET NX`` whose first attempt did reach Redis would find its own key and call a genuine
  request a replay. A lost reply thus gives a 503 and the client signs a new request.
- redis-py's sync client and its connection pool are thread-safe: one guard serves every
  worker thread of a gateway.
"""

from __future__ import annotations

import hashlib
import logging

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cambist.accounts.errors import ServiceUnavailable

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "cambist"
DEFAULT_TIMEOUT_S = 1.0  # connect and per-command; Redis answers a SET in well under 1 ms


class RedisReplayGuard:
    """``ReplayGuard`` on a shared Redis; see the module docstring."""

    def __init__(self, client: redis.Redis, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        if not namespace:
            raise ValueError("namespace must not be empty")
        self._client = client
        self._prefix = f"{namespace}:replay:"
        self._owns_client = False
        self._failing = False  # logs once per outage instead of once per request

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> RedisReplayGuard:
        """A guard with its own client (closed by ``close``); connects lazily, on first use."""
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        guard = cls(client, namespace=namespace)
        guard._owns_client = True
        return guard

    def redis_key(self, key: str) -> str:
        return self._prefix + hashlib.sha256(key.encode()).hexdigest()

    def first_seen(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        del now_ms  # Redis's clock decides expiry (see the module docstring)
        try:
            created = self._client.set(self.redis_key(key), b"1", nx=True, px=max(ttl_ms, 1))
        except redis.RedisError as error:
            if not self._failing:
                self._failing = True
                # The error names the server and the failure, never the key.
                log.warning(
                    "replay guard: Redis unavailable, signed requests refused with 503 (%s: %s)",
                    type(error).__name__,
                    error,
                )
            raise ServiceUnavailable("replay protection is temporarily unavailable; retry later") from error
        if self._failing:
            self._failing = False
            log.info("replay guard: Redis available again")
        return bool(created)

    def close(self) -> None:
        """Close the connection pool if this guard created it (``from_url``)."""
        if self._owns_client:
            self._client.close()
