"""A real ExchangeCore behind the same async ``execute`` shape the engine offers."""

from __future__ import annotations

from cambist.core.commands import Command
from cambist.core.events import MarketView, Outcome, Trade
from cambist.core.exchange import ExchangeCore
from cambist.defaults import default_commands

START_MS = 1_700_000_000_000


class CoreHarness:
    """Applies each command with the next sequence number and a fake clock, then takes the
    changes, as the engine does per batch; keeps every command, outcome and trade."""

    def __init__(self) -> None:
        self.core = ExchangeCore()
        self.seq = 0
        self.clock_ms = START_MS
        self.log: list[tuple[Command, Outcome]] = []
        self.trades: list[Trade] = []
        for command in default_commands():
            outcome = self.apply(command)
            assert outcome.reject is None, outcome

    def apply(self, command: Command) -> Outcome:
        self.seq += 1
        self.clock_ms += 5
        outcome = self.core.apply(command, self.seq, self.clock_ms)
        self.trades.extend(self.core.take_changes().trades)
        self.log.append((command, outcome))
        return outcome

    async def execute(self, command: Command) -> Outcome:
        return self.apply(command)

    def markets(self) -> list[MarketView]:
        return [market.view for market in self.core.markets.values()]

    def assets(self) -> dict[str, int]:
        return dict(self.core.assets)

    def open_orders(self, account_id: int) -> int:
        return self.core.open_order_count.get(account_id, 0)
