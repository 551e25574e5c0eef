"""Everything one API process runs, built from the settings and wired together.

Embedded (``cambist serve``) the engine node runs in the same process and event loop as the
API; its store writes happen on the engine's own writer thread and the API's reads on a small
read pool, so neither blocks the event loop. As a gateway (``cambist gateway``) the engine is
another process, reached through ``RedisEngineLink``; everything else is the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from cambist.accounts.replay import ReplayGuard
from cambist.accounts.service import AccountService
from cambist.config import Settings
from cambist.core.commands import Command
from cambist.engine.engine import Engine
from cambist.engine.link import EngineLink, LocalEngineLink, MarketState
from cambist.engine.node import EngineNode
from cambist.marketdata.hub import MarketDataHub
from cambist.marketdata.ticker import TickerCache
from cambist.store import migrate
from cambist.store.base import create_db_engine
from cambist.store.queries import TradingQueries
from cambist.store.trading import TradingStore
from cambist.stream.fanout import StreamHub

log = logging.getLogger(__name__)
T = TypeVar("T")
SCHEMA_WAIT_S = 120.0  # a gateway waits this long for the engine to migrate a new schema


class Runtime:
    def __init__(self, settings: Settings, *, demo: bool = False, gateway: bool = False) -> None:
        self.settings = settings
        self.is_gateway = gateway
        self.db = create_db_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        self.queries = TradingQueries(self.db)
        self._replay_guard: ReplayGuard | None = None
        if gateway:
            if not settings.redis_url:
                raise ValueError("a gateway needs CAMBIST_REDIS_URL")
            from cambist.accounts.replay_redis import RedisReplayGuard

            # Gateways share one memory of signed requests, or a replay to another passes.
            self._replay_guard = RedisReplayGuard.from_url(
                settings.redis_url, namespace=settings.redis_namespace
            )
        self.accounts = AccountService(
            self.db,
            settings.secret_key,
            settings.access_token_ttl_s,
            settings.refresh_token_ttl_s,
            signature_window_ms=settings.signature_window_ms,
            replay_guard=self._replay_guard,
        )
        self.node: EngineNode | None = None
        self.link: EngineLink
        if gateway:
            from cambist.bus.redis_link import RedisEngineLink

            assert settings.redis_url is not None
            self.link = RedisEngineLink(
                settings.redis_url,
                settings.redis_namespace,
                TradingStore(self.db),
                command_timeout_ms=settings.command_timeout_ms,
            )
        else:
            self.node = EngineNode(settings, self.db, demo=demo)
            self.link = LocalEngineLink(self.node.engine)
        self.hub = MarketDataHub()
        self.stream = StreamHub(self.hub)  # the WebSocket fan-out (cambist.stream)
        self.ws_connections: dict[str | None, int] = {}  # open WebSocket connections per client IP
        self.ticker_cache: TickerCache[Any] = TickerCache()
        self.book_cache: dict[tuple[str, int, int, int, int], Any] = {}  # see routes/market.py orderbook
        self._reads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cambist-read")
        self.started = False

    @property
    def engine(self) -> Engine:
        """The in-process engine (embedded only)."""
        if self.node is None:
            raise RuntimeError("this gateway's engine runs in another process")
        return self.node.engine

    @property
    def outbox(self) -> Any:
        return self.node.outbox if self.node is not None else None

    async def start(self) -> None:
        if self.node is not None:
            await self.node.start()
        else:
            await asyncio.to_thread(_wait_for_schema, self.settings.database_url)
            await self.link.start()
        self._load_hub(self.link.market_state())
        self.link.subscribe(self.hub.on_commit)
        self.link.on_state(self._load_hub)
        # After the hub: the stream reads reference data and depth from it.
        self.stream.load()
        self.link.subscribe(self.stream.on_commit)
        self.link.on_state(self.stream.on_recovered)
        self.started = True

    def _load_hub(self, state: MarketState) -> None:
        self.hub.reload(state.assets, state.markets, state.depth)

    async def stop(self) -> None:
        self.started = False
        if self.node is not None:
            await self.node.stop()
        else:
            await self.link.stop()
        if self._replay_guard is not None:
            self._replay_guard.close()  # type: ignore[attr-defined]
        self._reads.shutdown(wait=False)
        self.db.dispose()

    async def read(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking store read on the read pool."""
        return await asyncio.get_running_loop().run_in_executor(self._reads, partial(function, *args))

    async def execute(self, command: Command) -> Any:
        return await self.link.execute(command)


def _wait_for_schema(database_url: str) -> None:
    """The engine migrates; a gateway started beside it waits until the schema is current."""
    deadline = time.monotonic() + SCHEMA_WAIT_S
    while True:
        try:
            if migrate.is_current(database_url):
                return
        except Exception as error:  # the database not up yet either
            log.info("waiting for the database: %s", error)
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the database schema is not current after {SCHEMA_WAIT_S:.0f} s: run 'cambist migrate' "
                "or start the engine first"
            )
        time.sleep(0.5)
