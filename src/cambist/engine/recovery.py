"""Rebuild the core from the state tables and prove it is the state that was committed.

The store's rows (assets, markets, balances, open orders in queue order, counters) are the
snapshot; the state hash recorded with the last committed batch is the proof. A rebuilt core
whose freshly computed hash differs, or that breaks an invariant, is refused: starting on a
wrong ledger would be worse than not starting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import literal_column, select

from cambist.core.checks import check_invariants
from cambist.core.commands import decode_command
from cambist.core.exchange import ExchangeCore, InvariantViolation
from cambist.store.base import Base
from cambist.store.trading import TradingStore

log = logging.getLogger(__name__)


class RecoveryError(RuntimeError):
    """The stored state does not prove itself; the engine must not start on it."""


@dataclass(frozen=True, slots=True)
class Recovered:
    core: ExchangeCore
    client_order_ids: dict[tuple[int, str], int]
    credit_ids: set[str]
    input_position: str | None = None  # see Engine.submit


def recover_core(store: TradingStore) -> Recovered:
    snapshot, recorded_hash = store.load_snapshot()
    input_position = store.load_input_position()
    core = ExchangeCore.restore(snapshot)
    rebuilt_hash = core.compute_state_hash()
    if recorded_hash is not None and rebuilt_hash != recorded_hash:
        raise RecoveryError(
            f"rebuilt state hash {rebuilt_hash} differs from the committed {recorded_hash} "
            f"at seq {core.last_seq}"
        )
    try:
        check_invariants(core)
    except InvariantViolation as violation:
        raise RecoveryError(f"the stored state breaks an invariant: {violation}") from violation
    return Recovered(core, load_client_order_ids(store), load_credit_ids(store), input_position)


def load_client_order_ids(store: TradingStore) -> dict[tuple[int, str], int]:
    orders = Base.metadata.tables["orders"]
    query = select(orders.c.account_id, orders.c.client_order_id, orders.c.order_id).where(
        orders.c.client_order_id.is_not(None)
    )
    with store.engine.connect() as connection:
        return {(row[0], row[1]): row[2] for row in connection.execute(query)}


def load_credit_ids(store: TradingStore) -> set[str]:
    ledger = Base.metadata.tables["ledger_entries"]
    query = select(ledger.c.ref).where(ledger.c.kind == literal_column("'credit'")).distinct()
    with store.engine.connect() as connection:
        return {row[0] for row in connection.execute(query)}


def replay_journal(store: TradingStore, batch: int = 10_000) -> ExchangeCore:
    """Replay the whole command journal into a fresh core (``cambist verify``)."""
    core = ExchangeCore()
    after = 0
    while True:
        rows = list(store.journal_since(after, batch))
        if not rows:
            return core
        for seq, time, payload in rows:
            core.apply(decode_command(payload), seq, time)
            core.take_changes()
            after = seq
