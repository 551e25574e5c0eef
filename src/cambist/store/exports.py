"""What the event exporter (``cambist.bus``) reads and writes in the store.

``export_cursor`` remembers, per exporter name, the last engine sequence number whose events
the broker confirmed. After a restart or a gap the exporter rebuilds the events of the
batches after it from the committed rows: trades by ``seq``, orders and balances by their
``updated_seq`` (so only their latest state is replayed, see ``cambist.bus.export``).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from cambist.core.events import BalanceView, OrderView, Trade
from cambist.store.models_trading import (
    ENGINE_STATE_ID,
    BalanceRow,
    EngineStateRow,
    ExportCursorRow,
    OrderRow,
    TradeRow,
    table_of,
)

_cursor = table_of(ExportCursorRow)
_trades = table_of(TradeRow)
_orders = table_of(OrderRow)
_balances = table_of(BalanceRow)
_engine_state = table_of(EngineStateRow)


@dataclass(frozen=True, slots=True)
class CommittedRows:
    """The committed rows changed in the sequence range (after, upto]."""

    upto: int
    trades: list[Trade]
    orders: list[OrderView]
    balances: list[tuple[BalanceView, int]]  # with the seq that last changed the balance


class ExportStore:
    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self._name = name

    def read_cursor(self) -> int | None:
        """The last exported seq, or ``None`` if this exporter never ran on this store."""
        with self._engine.connect() as conn:
            return conn.execute(select(_cursor.c.seq).where(_cursor.c.name == self._name)).scalar()

    def write_cursor(self, seq: int) -> None:
        """Move the cursor forward (never back)."""
        with self._engine.begin() as conn:
            moved = conn.execute(
                update(_cursor).where(_cursor.c.name == self._name, _cursor.c.seq < seq).values(seq=seq)
            )
            if moved.rowcount == 0:
                exists = conn.execute(select(_cursor.c.seq).where(_cursor.c.name == self._name)).first()
                if exists is None:
                    conn.execute(_cursor.insert().values(name=self._name, seq=seq))

    def last_seq(self) -> int:
        with self._engine.connect() as conn:
            seq = conn.execute(
                select(_engine_state.c.last_seq).where(_engine_state.c.id == ENGINE_STATE_ID)
            ).scalar()
        return int(seq or 0)

    def committed_between(self, after: int, upto: int) -> CommittedRows:
        """Trades with ``after < seq <= upto`` and orders and balances whose latest change is
        in that range, each ordered by seq. One read transaction, so the three agree."""
        with self._engine.connect() as conn:
            trades = conn.execute(
                select(*[_trades.c[name] for name in Trade.__struct_fields__])
                .where(_trades.c.seq > after, _trades.c.seq <= upto)
                .order_by(_trades.c.seq, _trades.c.trade_id)
            )
            trade_views = [msgspec.convert(row._asdict(), Trade) for row in trades]
            orders = conn.execute(
                select(*[_orders.c[name] for name in OrderView.__struct_fields__])
                .where(_orders.c.updated_seq > after, _orders.c.updated_seq <= upto)
                .order_by(_orders.c.updated_seq, _orders.c.order_id)
            )
            order_views = [msgspec.convert(row._asdict(), OrderView) for row in orders]
            balances = conn.execute(
                select(_balances.c.account_id, _balances.c.asset, _balances.c.available)
                .add_columns(_balances.c.locked, _balances.c.updated_seq)
                .where(_balances.c.updated_seq > after, _balances.c.updated_seq <= upto)
                .order_by(_balances.c.updated_seq, _balances.c.account_id, _balances.c.asset)
            )
            balance_views = [
                (BalanceView(row.account_id, row.asset, row.available, row.locked), int(row.updated_seq))
                for row in balances
            ]
        return CommittedRows(upto, trade_views, order_views, balance_views)
