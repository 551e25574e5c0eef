"""Everything one gateway process runs, built from the settings and wired together.

Embedded (`cambist serve`) the engine runs in the same process and event loop as the API;
its store writes happen on the engine's own writer thread and the API's reads on a small
read pool, so neither blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from cambist import metrics
from cambist.accounts.service import AccountService
from cambist.config import Settings
from cambist.core.commands import Command
from cambist.core.events import AssetView
from cambist.core.exchange import ExchangeCore
from cambist.core.types import OrderType
from cambist.defaults import default_commands
from cambist.engine.engine import CommittedBatch, Engine
from cambist.marketdata.hub import MarketDataHub
from cambist.marketdata.ticker import TickerCache
from cambist.store import migrate
from cambist.store.base import create_db_engine
from cambist.store.queries import TradingQueries
from cambist.store.trading import TradingStore
from cambist.stream.fanout import StreamHub

log = logging.getLogger(__name__)
T = TypeVar("T")

DEMO_MAKER_EMAIL = "demo-maker@cambist.invalid"
DEMO_TAKER_EMAIL = "demo-taker@cambist.invalid"


class Runtime:
    def __init__(self, settings: Settings, *, demo: bool = False) -> None:
        self.settings = settings
        self.demo_enabled = demo
        self.db = create_db_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        # The single writer gets its own connection, without a ping before every batch.
        self._writer_db = create_db_engine(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous, pool_size=1, pre_ping=False
        )
        self.store = TradingStore(self._writer_db)
        self.queries = TradingQueries(self.db)
        self.accounts = AccountService(
            self.db,
            settings.secret_key,
            settings.access_token_ttl_s,
            settings.refresh_token_ttl_s,
            signature_window_ms=settings.signature_window_ms,
        )
        self.engine = Engine(
            self.store, batch_max=settings.engine_batch_max, inbox_max=settings.engine_inbox_max
        )
        self.hub = MarketDataHub()
        self.stream = StreamHub(self.hub)  # the WebSocket fan-out (cambist.stream)
        self.ws_connections: dict[str | None, int] = {}  # open WebSocket connections per client IP
        self.ticker_cache: TickerCache[Any] = TickerCache()
        self.book_cache: dict[tuple[str, int, int, int, int], Any] = {}  # see routes/market.py orderbook
        self._reads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cambist-read")
        self._demo_task: asyncio.Task[None] | None = None
        self._demo: Any = None
        self.outbox: Any = None  # cambist.bus.export.Outbox when CAMBIST_AMQP_URL is set
        self.started = False

    async def start(self) -> None:
        await asyncio.to_thread(migrate.upgrade, self.settings.database_url)
        await self.engine.start()
        await self._bootstrap_reference_data()
        self._load_hub(self.engine.core)
        self.engine.subscribe(self.hub.on_commit)
        self.engine.on_recovered(self._load_hub)
        # After the hub: the stream reads reference data and depth from it.
        self.stream.load()
        self.engine.subscribe(self.stream.on_commit)
        self.engine.on_recovered(self.stream.on_recovered)
        self.engine.subscribe(_record_metrics(self.engine))
        if self.settings.amqp_url:
            await self._start_export(self.settings.amqp_url)
        if self.demo_enabled:
            await self._start_demo()
        self.started = True

    def _load_hub(self, core: ExchangeCore) -> None:
        self.hub.reload(
            [AssetView(asset, scale) for asset, scale in core.assets.items()],
            [market.view for market in core.markets.values()],
            [self.engine.depth_snapshot(symbol) for symbol in core.markets],
        )

    async def stop(self) -> None:
        self.started = False
        if self._demo is not None:
            await self._demo.stop()
        if self._demo_task is not None:
            self._demo_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._demo_task
        await self.engine.stop()
        if self.outbox is not None:
            # After the engine: nothing more is committed; what is not confirmed yet is
            # replayed from the store at the next start.
            await self.outbox.stop()
        self._reads.shutdown(wait=False)
        self.db.dispose()
        self._writer_db.dispose()

    async def read(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking store read on the read pool."""
        return await asyncio.get_running_loop().run_in_executor(self._reads, partial(function, *args))

    async def execute(self, command: Command) -> Any:
        return await self.engine.execute(command)

    async def _start_export(self, amqp_url: str) -> None:
        """Trades, order updates and balance changes to RabbitMQ (``cambist.bus``). The broker
        being away never stops trading: the outbox retries and catches up from the store."""
        from cambist.bus.export import MessageBuilder, Outbox
        from cambist.bus.rabbitmq import RabbitExporter
        from cambist.store.exports import ExportStore

        self.outbox = Outbox(
            RabbitExporter(amqp_url),
            MessageBuilder(lambda: self.hub.assets, lambda: self.hub.markets),
            ExportStore(self.db, "rabbitmq"),
        )
        self.engine.subscribe(self.outbox.on_commit)
        self.engine.on_recovered(self.outbox.on_recovered)
        await self.outbox.start()

    async def _bootstrap_reference_data(self) -> None:
        """A fresh store starts with the default assets and markets, through the journal."""
        if self.engine.core.assets:
            return
        for command in default_commands():
            outcome = await self.engine.execute(command)
            if outcome.reject is not None:
                raise RuntimeError(f"default reference data rejected: {outcome.reject} {outcome.message}")

    async def _start_demo(self) -> None:
        from cambist.demo.market_maker import DemoLiquidity

        maker = await asyncio.to_thread(self._demo_user, DEMO_MAKER_EMAIL)
        taker = await asyncio.to_thread(self._demo_user, DEMO_TAKER_EMAIL)
        self._demo = DemoLiquidity(
            execute=self.engine.execute,
            markets=lambda: list(self.hub.markets.values()),
            assets=lambda: dict(self.hub.assets),
            maker_account=maker,
            taker_account=taker,
        )
        self._demo_task = asyncio.create_task(self._demo.run(), name="cambist-demo")

    def _demo_user(self, email: str) -> int:
        # A random password nobody knows: the demo accounts trade only from inside.
        return self.accounts.create_user(email, secrets.token_urlsafe(24), ["user"])


def _record_metrics(engine: Engine) -> Callable[[CommittedBatch], None]:
    def record(batch: CommittedBatch) -> None:
        metrics.ENGINE_BATCH_SIZE.observe(len(batch.outcomes))
        metrics.ENGINE_COMMIT_SECONDS.observe(engine.last_commit_ms / 1000)
        metrics.ENGINE_LAST_SEQ.set(batch.changes.last_seq)
        metrics.ENGINE_INBOX_DEPTH.set(engine.inbox_depth())
        for command, outcome in batch.outcomes:
            kind = type(command).__name__
            metrics.ENGINE_COMMANDS.labels(kind, outcome.reject.value if outcome.reject else "ok").inc()
            if outcome.order is not None and outcome.order.created_seq == outcome.seq:
                metrics.ORDERS.labels(outcome.order.symbol, OrderType(outcome.order.order_type).value).inc()
        for trade in batch.changes.trades:
            metrics.TRADES.labels(trade.symbol).inc()

    return record
