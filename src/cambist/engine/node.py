"""Everything that runs beside the engine, in whichever process holds it.

Embedded (``cambist serve``) the node lives in the API process; distributed (``cambist
engine``) it is the engine process, and ``RedisEngineServer`` connects it to the gateways.
The node owns the single writer: the writer lock, migrations, the reference data of a fresh
store, the event export to RabbitMQ and the demo liquidity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine as DbEngine

from cambist import metrics
from cambist.accounts.service import AccountService
from cambist.config import Settings
from cambist.core.types import OrderType
from cambist.defaults import default_commands
from cambist.engine.engine import CommittedBatch, Engine
from cambist.engine.writer_lock import WriterLock
from cambist.store import migrate
from cambist.store.base import create_db_engine
from cambist.store.trading import TradingStore

log = logging.getLogger(__name__)

DEMO_MAKER_EMAIL = "demo-maker@cambist.invalid"
DEMO_TAKER_EMAIL = "demo-taker@cambist.invalid"


class EngineNode:
    def __init__(self, settings: Settings, db: DbEngine, *, demo: bool = False) -> None:
        self.settings = settings
        self.db = db  # shared reads and the small writes beside the engine (export cursor)
        # The single writer gets its own connection, without a ping before every batch.
        self._writer_db = create_db_engine(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous, pool_size=1, pre_ping=False
        )
        self.store = TradingStore(self._writer_db)
        self.engine = Engine(
            self.store, batch_max=settings.engine_batch_max, inbox_max=settings.engine_inbox_max
        )
        self._lock = WriterLock(self.db)
        self.demo_enabled = demo
        self._demo: Any = None
        self._demo_task: asyncio.Task[None] | None = None
        self.outbox: Any = None  # cambist.bus.export.Outbox when CAMBIST_AMQP_URL is set

    async def start(self) -> None:
        await asyncio.to_thread(self._lock.acquire)
        await asyncio.to_thread(migrate.upgrade, self.settings.database_url)
        await self.engine.start()
        await self._bootstrap_reference_data()
        self.engine.subscribe(_record_metrics(self.engine))
        if self.settings.amqp_url:
            await self._start_export(self.settings.amqp_url)
        if self.demo_enabled:
            await self._start_demo()

    async def stop(self) -> None:
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
        self._writer_db.dispose()
        self._lock.release()

    async def _bootstrap_reference_data(self) -> None:
        """A fresh store starts with the default assets and markets, through the journal."""
        if self.engine.core.assets:
            return
        for command in default_commands():
            outcome = await self.engine.execute(command)
            if outcome.reject is not None:
                raise RuntimeError(f"default reference data rejected: {outcome.reject} {outcome.message}")

    async def _start_export(self, amqp_url: str) -> None:
        """Trades, order updates and balance changes to RabbitMQ (``cambist.bus``). The broker
        being away never stops trading: the outbox retries and catches up from the store."""
        from cambist.bus.export import MessageBuilder, Outbox
        from cambist.bus.rabbitmq import RabbitExporter
        from cambist.store.exports import ExportStore

        core = self.engine
        self.outbox = Outbox(
            RabbitExporter(amqp_url),
            MessageBuilder(
                lambda: dict(core.core.assets), lambda: {s: m.view for s, m in core.core.markets.items()}
            ),
            ExportStore(self.db, "rabbitmq"),
        )
        self.engine.subscribe(self.outbox.on_commit)
        self.engine.on_recovered(self.outbox.on_recovered)
        await self.outbox.start()

    async def _start_demo(self) -> None:
        from cambist.demo.market_maker import DemoLiquidity

        accounts = AccountService(
            self.db,
            self.settings.secret_key,
            self.settings.access_token_ttl_s,
            self.settings.refresh_token_ttl_s,
        )
        maker = await asyncio.to_thread(_demo_user, accounts, DEMO_MAKER_EMAIL)
        taker = await asyncio.to_thread(_demo_user, accounts, DEMO_TAKER_EMAIL)
        core = self.engine
        self._demo = DemoLiquidity(
            execute=self.engine.execute,
            markets=lambda: [market.view for market in core.core.markets.values()],
            assets=lambda: dict(core.core.assets),
            maker_account=maker,
            taker_account=taker,
        )
        self._demo_task = asyncio.create_task(self._demo.run(), name="cambist-demo")


def _demo_user(accounts: AccountService, email: str) -> int:
    # A random password nobody knows: the demo accounts trade only from inside.
    return accounts.create_user(email, secrets.token_urlsafe(24), ["user"])


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
