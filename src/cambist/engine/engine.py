"""The engine: the single writer of all money state.

It takes commands from a bounded inbox, applies a batch of them to the core in sequence,
writes the journal and every resulting row in ONE transaction, and only after that commit
answers the callers and publishes the batch. So an acknowledged command survives any crash
and an unacknowledged one is either absent or fully applied.

If a commit fails the in-memory core is ahead of the database and must not be used: the
engine fails the batch's callers, marks itself unavailable, and rebuilds the core from the
store (retrying until the store answers) before it accepts commands again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cambist.core.checks import check_invariants
from cambist.core.commands import Command, Credit, ExpireOrders, PlaceOrder, encode_command
from cambist.core.events import Changes, Outcome
from cambist.core.exchange import ExchangeCore, InvariantViolation
from cambist.core.types import RejectCode
from cambist.engine.recovery import RecoveryError, recover_core
from cambist.store.trading import TradingStore

log = logging.getLogger(__name__)

DEPTH_SNAPSHOT_LEVELS = 1000  # levels per side kept for the public order book
CLOCK_INTERVAL_S = 0.25  # how often the engine looks whether a GTD order is due


class EngineUnavailable(Exception):
    """The engine cannot take commands now (starting, recovering, stopped): answer 503."""


class EngineOverloaded(EngineUnavailable):
    """The inbox is full: shed load instead of queueing without bound."""


class OutcomeUnknown(EngineUnavailable):
    """A commit failed: the command may or may not have been applied."""


UNKNOWN_OUTCOME = (
    "the engine could not confirm this command, which may or may not have been applied: "
    "look it up by its clientOrderId or creditId before sending it again"
)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    symbol: str
    sequence: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class CommittedBatch:
    """What the engine publishes after a commit."""

    outcomes: list[tuple[Command, Outcome]]
    changes: Changes
    depth: dict[str, DepthSnapshot] = field(default_factory=dict)
    # Sequence number of the batch's first journaled command (its last is ``changes.last_seq``):
    # a listener in another process detects a missed batch by a gap between the two.
    first_seq: int = 0


Subscriber = Callable[[CommittedBatch], None]


@dataclass(slots=True)
class _Pending:
    command: Command
    future: asyncio.Future[Outcome]
    # Where the command came from in an outside input (a Redis stream entry id), committed with
    # the batch: a restarted engine resumes after it, so no entry is ever applied twice.
    position: str | None = None


@dataclass(slots=True)
class _Applied:
    """A batch applied to the core, waiting for its commit."""

    outcomes: list[tuple[_Pending, Outcome]]
    journal: list[tuple[int, int, str, bytes]]
    changes: Changes | None
    depth: dict[str, DepthSnapshot]
    input_position: str | None = None


class Engine:
    def __init__(
        self,
        store: TradingStore,
        *,
        batch_max: int = 256,
        inbox_max: int = 10_000,
        clock_ms: Callable[[], int] = wall_clock_ms,
        full_check_every: int = 10_000,
    ) -> None:
        self._store = store
        self._batch_max = batch_max
        self._inbox: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=inbox_max)
        self._clock_ms = clock_ms
        self._full_check_every = full_check_every
        self._since_full_check = 0
        self._subscribers: list[Subscriber] = []
        self._recovery_listeners: list[Callable[[ExchangeCore], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._expiry_pending = False
        self._core: ExchangeCore | None = None
        self._available = False
        # Every clientOrderId ever used, so a repeat returns the first order even after the
        # order has closed (the core only tracks open ones). Loaded from the store at start.
        self._client_order_ids: dict[tuple[int, str], int] = {}
        self._credit_ids: set[str] = set()  # likewise for credits: applied once, ever
        self._in_flight: deque[_Applied] = deque()  # applied, not yet committed (at most 2)
        self._writing: _Applied | None = None  # handed to the writer thread, outcome unknown
        self._input_position: str | None = None  # see _Pending.position
        # One thread does every store write: the writer is single by construction.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cambist-writer")
        self.commands_applied = 0
        self.batches_committed = 0
        self.last_commit_ms = 0.0

    # ------------------------------------------------------------------ lifecycle

    @property
    def core(self) -> ExchangeCore:
        """The live core, for read-only use on the engine's event loop (depth at start)."""
        if self._core is None:
            raise EngineUnavailable("the engine has not recovered yet")
        return self._core

    @property
    def available(self) -> bool:
        return self._available

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def on_recovered(self, listener: Callable[[ExchangeCore], None]) -> None:
        """Called after the engine rebuilt its core mid-run (a failed commit): a batch whose
        commit answer was lost may be in the store without ever having been published, so
        listeners reload what they derive from committed state."""
        self._recovery_listeners.append(listener)

    async def start(self) -> None:
        await self._recover()
        self._task = asyncio.create_task(self._supervise(), name="cambist-engine")
        self._clock_task = asyncio.create_task(self._clock_loop(), name="cambist-engine-clock")

    async def stop(self) -> None:
        self._available = False
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._clock_task
            self._clock_task = None
        if self._task is not None:
            self._task.cancel()
            # A task that already ended on an invariant violation or a failed recovery logged
            # why when it did: stopping must still complete (and release the writer).
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        while not self._inbox.empty():
            self._fail(self._inbox.get_nowait(), EngineUnavailable("the engine is stopping"))
        self._writer.shutdown(wait=True)

    async def _recover(self) -> None:
        self._available = False
        loop = asyncio.get_running_loop()
        recovered = await loop.run_in_executor(self._writer, recover_core, self._store)
        core = recovered.core
        self._core = core
        self._client_order_ids = recovered.client_order_ids
        self._credit_ids = recovered.credit_ids
        self._input_position = recovered.input_position
        self._available = True
        log.info("engine recovered at seq %s, state hash %s", core.last_seq, core.state_hash())

    # ------------------------------------------------------------------ submitting

    async def execute(self, command: Command) -> Outcome:
        """Apply one command; returns after its batch is committed."""
        return await self.submit(command)

    def submit(self, command: Command, position: str | None = None) -> asyncio.Future[Outcome]:
        """Queue one command; the future resolves after its batch is committed.

        ``position`` is the command's place in an outside input, committed with its batch
        (``input_position`` after a restart). Positions must be submitted in increasing order.
        """
        if not self._available:
            raise EngineUnavailable("the engine is not available")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        try:
            self._inbox.put_nowait(_Pending(command, future, position))
        except asyncio.QueueFull:
            raise EngineOverloaded("the engine inbox is full") from None
        return future

    @property
    def input_position(self) -> str | None:
        """The outside input position of the last command applied (committed, after a start)."""
        return self._input_position

    @property
    def last_seq(self) -> int:
        return self.core.last_seq

    def inbox_depth(self) -> int:
        return self._inbox.qsize()

    def depth_snapshot(self, symbol: str, levels: int = DEPTH_SNAPSHOT_LEVELS) -> DepthSnapshot:
        bids, asks = self.core.depth(symbol, levels)
        return DepthSnapshot(symbol, self.core.last_seq, bids, asks)

    # ------------------------------------------------------------------ the clock

    async def _clock_loop(self) -> None:
        """Send ``ExpireOrders`` through the inbox once the earliest GTD expiry has passed.

        The core reads no clock: the command carries the engine's time like any other, is
        journaled, and replays to the same expiries. One at a time, so a busy engine never
        queues a pile of them.
        """
        while True:
            await asyncio.sleep(CLOCK_INTERVAL_S)
            core = self._core
            if core is None or not self._available or self._expiry_pending:
                continue
            due = core.next_expiry()
            if due is None or due > self._clock_ms():
                continue
            try:
                future = self.submit(ExpireOrders())
            except EngineUnavailable:
                continue
            self._expiry_pending = True
            future.add_done_callback(self._expiry_done)

    def _expiry_done(self, future: asyncio.Future[Outcome]) -> None:
        self._expiry_pending = False
        if not future.cancelled():
            future.exception()  # retrieved: a failed one is retried at the next tick

    # ------------------------------------------------------------------ the loop

    async def _supervise(self) -> None:
        """Run the apply and commit loops; on a failed commit, fail what is in flight and
        rebuild the core from the store before taking commands again."""
        while True:
            commits: asyncio.Queue[_Applied] = asyncio.Queue(maxsize=1)
            applier = asyncio.create_task(self._apply_loop(commits), name="cambist-engine-apply")
            committer = asyncio.create_task(self._commit_loop(commits), name="cambist-engine-commit")
            try:
                done, _ = await asyncio.wait({applier, committer}, return_when=asyncio.FIRST_EXCEPTION)
            except asyncio.CancelledError:
                await self._halt(applier, committer, commits, EngineUnavailable("the engine stopped"))
                raise
            error = next((t.exception() for t in done if not t.cancelled() and t.exception()), None)
            # A failed write may still have committed (the answer to COMMIT can be lost): the
            # caller only learns "unknown", resolved by its clientOrderId or creditId. The
            # store's error stays in the log, not in what clients see.
            await self._halt(applier, committer, commits, OutcomeUnknown(UNKNOWN_OUTCOME))
            if isinstance(error, InvariantViolation):
                # A bug: never persist or acknowledge a state that breaks an invariant.
                log.error("invariant violated; the engine stops: %s", error)
                self._available = False
                raise error
            log.error("batch commit failed (%s); recovering from the store", error)
            await self._recover_until_ok()

    async def _halt(
        self,
        applier: asyncio.Task[None],
        committer: asyncio.Task[None],
        commits: asyncio.Queue[_Applied],
        error: Exception,
    ) -> None:
        self._available = False
        for task in (applier, committer):
            task.cancel()
        for task in (applier, committer):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for applied in self._in_flight:
            # A batch already handed to the writer thread may still commit (cancelling the
            # wait does not stop the thread): its callers cannot be told "not applied".
            told = OutcomeUnknown(UNKNOWN_OUTCOME) if applied is self._writing else error
            for pending, _ in applied.outcomes:
                self._fail(pending, told)
        self._in_flight.clear()
        self._writing = None
        while not commits.empty():
            commits.get_nowait()

    async def _apply_loop(self, commits: asyncio.Queue[_Applied]) -> None:
        """Apply batches to the core. Runs ahead of the commit loop by at most one batch, so
        applying batch N+1 overlaps the database writing batch N."""
        while True:
            batch = [await self._inbox.get()]
            while len(batch) < self._batch_max and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            try:
                applied = self._apply(batch)
            except BaseException:
                # The error (logged by the supervisor) may name accounts and amounts: the
                # callers only learn that the engine stopped.
                for pending in batch:
                    self._fail(pending, EngineUnavailable("the engine stopped on an internal error"))
                raise
            self._in_flight.append(applied)
            await commits.put(applied)

    async def _commit_loop(self, commits: asyncio.Queue[_Applied]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            applied = await commits.get()
            if applied.changes is not None:
                started = time.perf_counter()
                self._writing = applied
                await loop.run_in_executor(
                    self._writer,
                    self._store.write_batch,
                    applied.journal,
                    applied.changes,
                    applied.input_position,
                )
                self._writing = None
                self.last_commit_ms = (time.perf_counter() - started) * 1000
                self.commands_applied += len(applied.journal)
                self.batches_committed += 1
            # Committed: from here on everything is durable and may be told.
            self._in_flight.popleft()
            for pending, outcome in applied.outcomes:
                self._resolve(pending, outcome)
            if applied.journal:
                self._publish(applied)

    async def _recover_until_ok(self) -> None:
        delay_s = 0.2
        while True:
            # Commands queued meanwhile were never applied: fail them, clients retry.
            while not self._inbox.empty():
                self._fail(self._inbox.get_nowait(), EngineUnavailable("the engine is recovering"))
            try:
                await self._recover()
            except RecoveryError as error:
                log.error("the stored state does not prove itself; the engine stops: %s", error)
                raise
            except Exception:
                log.warning("store not available yet; retrying in %.1f s", delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)
                continue
            for listener in self._recovery_listeners:
                try:
                    listener(self.core)
                except Exception:
                    log.exception("recovery listener failed")
            return

    def _apply(self, batch: list[_Pending]) -> _Applied:
        core = self.core
        journal: list[tuple[int, int, str, bytes]] = []
        outcomes: list[tuple[_Pending, Outcome]] = []
        for pending in batch:
            if pending.future.done():  # the caller gave up (cancelled) before we started
                continue
            command = pending.command
            duplicate = self._already_applied(command)
            if duplicate is not None:
                outcomes.append((pending, duplicate))
                continue
            outcome = core.apply(command, core.last_seq + 1, self._clock_ms())
            if pending.position is not None:
                self._input_position = pending.position
            journal.append((outcome.seq, outcome.time, type(command).__name__, encode_command(command)))
            # Remembered at once, not at commit: the next batch is applied before this one
            # commits, and a failed commit rebuilds these maps from the store anyway.
            if isinstance(command, PlaceOrder) and command.client_order_id and outcome.order is not None:
                self._client_order_ids[(command.account_id, command.client_order_id)] = outcome.order.order_id
            elif isinstance(command, Credit) and outcome.reject is None:
                self._credit_ids.add(command.credit_id)
            outcomes.append((pending, outcome))
        if not journal:
            return _Applied(outcomes, journal, None, {}, self._input_position)
        changes = core.take_changes()
        depth = {symbol: self.depth_snapshot(symbol) for symbol in changes.books_changed}
        self._since_full_check += len(journal)
        if self._since_full_check >= self._full_check_every:
            self._since_full_check = 0
            check_invariants(core)
        return _Applied(outcomes, journal, changes, depth, self._input_position)

    def _publish(self, applied: _Applied) -> None:
        assert applied.changes is not None
        committed = CommittedBatch(
            [(p.command, o) for p, o in applied.outcomes],
            applied.changes,
            applied.depth,
            first_seq=applied.journal[0][0],
        )
        for subscriber in self._subscribers:
            try:
                subscriber(committed)
            except Exception:  # a broken listener must not stop the writer
                log.exception("engine subscriber failed")

    def _already_applied(self, command: Command) -> Outcome | None:
        """A repeated clientOrderId or creditId is answered without applying anything."""
        core = self.core
        if isinstance(command, Credit):
            if command.credit_id in self._credit_ids:
                return Outcome(
                    seq=core.last_seq,
                    time=core.last_time,
                    reject=RejectCode.DUPLICATE_CREDIT_ID,
                    message=f"credit {command.credit_id} was already applied",
                )
            return None
        if not isinstance(command, PlaceOrder) or not command.client_order_id:
            return None
        key = (command.account_id, command.client_order_id)
        order_id = self._client_order_ids.get(key)
        if order_id is None:
            return None
        return Outcome(
            seq=core.last_seq,
            time=core.last_time,
            reject=RejectCode.DUPLICATE_CLIENT_ORDER_ID,
            message=f"clientOrderId already used by order {order_id}",
        )

    @staticmethod
    def _resolve(pending: _Pending, outcome: Outcome) -> None:
        if not pending.future.done():
            pending.future.set_result(outcome)

    @staticmethod
    def _fail(pending: _Pending, error: Exception) -> None:
        if not pending.future.done():
            pending.future.set_exception(error)
