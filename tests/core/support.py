"""Building blocks for the core tests: a core with assets and markets, and a driver that
numbers commands, keeps the journal and reads balances back.

Amounts are written as decimal strings and converted with ``parse_units`` so a test reads
like the API (``h.limit(1, "buy", "50000", "0.1")``) while the core sees integer units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from cambist.core.commands import (
    AddAsset,
    CancelAllOrders,
    CancelOrder,
    Command,
    Credit,
    PlaceOrder,
    UpsertMarket,
    decode_command,
    encode_command,
)
from cambist.core.events import Changes, Outcome
from cambist.core.exchange import ExchangeCore
from cambist.core.numbers import parse_units
from cambist.core.types import (
    FEE_ACCOUNT,
    MarketStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

SYMBOL = "BTC-USDT"
BTC_SCALE = 8


@dataclass
class Harness:
    """A core plus the commands applied to it, numbered 1, 2, 3... with time = 1000 * seq."""

    core: ExchangeCore
    quote_scale: int
    journal: list[Command] = field(default_factory=list)
    seq: int = 0

    # ---------------------------------------------------------------- units

    def btc(self, text: str) -> int:
        return parse_units(text, BTC_SCALE)

    def usdt(self, text: str) -> int:
        """Quote units; also the unit of a price (quote units per whole BTC)."""
        return parse_units(text, self.quote_scale)

    # ---------------------------------------------------------------- commands

    def apply(self, command: Command) -> Outcome:
        self.seq += 1
        self.journal.append(command)
        return self.core.apply(command, self.seq, self.seq * 1000)

    def ok(self, command: Command) -> Outcome:
        outcome = self.apply(command)
        assert outcome.reject is None, (outcome.reject, outcome.message)
        return outcome

    def fund(self, account: int, *, btc: str = "0", usdt: str = "0") -> None:
        if btc != "0":
            self.ok(Credit(f"fund-{self.seq}", account, "BTC", self.btc(btc), "test"))
        if usdt != "0":
            self.ok(Credit(f"fund-{self.seq}", account, "USDT", self.usdt(usdt), "test"))

    def limit(
        self,
        account: int,
        side: str,
        price: str,
        quantity: str,
        *,
        tif: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        client_order_id: str | None = None,
        stp: SelfTradePrevention | None = None,
        symbol: str = SYMBOL,
    ) -> Outcome:
        return self.apply(
            PlaceOrder(
                account_id=account,
                symbol=symbol,
                side=Side(side),
                order_type=OrderType.LIMIT,
                quantity=self.btc(quantity),
                price=self.usdt(price),
                time_in_force=tif,
                post_only=post_only,
                client_order_id=client_order_id,
                self_trade_prevention=stp,
            )
        )

    def market(
        self,
        account: int,
        side: str,
        *,
        quantity: str | None = None,
        quote: str | None = None,
        tif: TimeInForce = TimeInForce.GTC,
        stp: SelfTradePrevention | None = None,
    ) -> Outcome:
        return self.apply(
            PlaceOrder(
                account_id=account,
                symbol=SYMBOL,
                side=Side(side),
                order_type=OrderType.MARKET,
                quantity=None if quantity is None else self.btc(quantity),
                quote_quantity=None if quote is None else self.usdt(quote),
                time_in_force=tif,
                self_trade_prevention=stp,
            )
        )

    def cancel(self, account: int, order_id: int) -> Outcome:
        return self.apply(CancelOrder(account_id=account, order_id=order_id))

    def cancel_all(self, account: int, symbol: str = SYMBOL) -> Outcome:
        return self.apply(CancelAllOrders(account_id=account, symbol=symbol))

    def upsert(self, **overrides: object) -> Outcome:
        return self.apply(market_command(self.quote_scale, **overrides))

    # ---------------------------------------------------------------- reading state

    def balance(self, account: int, asset: str) -> tuple[int, int]:
        view = self.core.balance(account, asset)
        return view.available, view.locked

    def fees(self, asset: str) -> int:
        return self.core.balance(FEE_ACCOUNT, asset).available

    def changes(self) -> Changes:
        return self.core.take_changes()

    def replay(self) -> ExchangeCore:
        """A fresh core fed the journal through the MessagePack codec, like recovery."""
        fresh = ExchangeCore()
        for seq, command in enumerate(self.journal, start=1):
            fresh.apply(decode_command(encode_command(command)), seq, seq * 1000)
        return fresh


def market_command(quote_scale: int = 8, **overrides: object) -> UpsertMarket:
    """BTC-USDT with a tick of 0.01 USDT, a lot of 0.0001 BTC, maker 0.1 %, taker 0.2 %."""
    fields: dict[str, object] = {
        "symbol": SYMBOL,
        "base_asset": "BTC",
        "quote_asset": "USDT",
        "tick_size": parse_units("0.01", quote_scale),
        "lot_size": parse_units("0.0001", BTC_SCALE),
        "min_quantity": parse_units("0.0001", BTC_SCALE),
        "min_notional": 0,
        "maker_fee_ppm": 1000,
        "taker_fee_ppm": 2000,
        "status": MarketStatus.TRADING,
        "self_trade_prevention": SelfTradePrevention.EXPIRE_MAKER,
    }
    fields.update(overrides)
    return msgspec.convert(fields, UpsertMarket, from_attributes=False)


def make_harness(quote_scale: int = 8, **market: object) -> Harness:
    """A core with BTC (scale 8), USDT (``quote_scale``) and the BTC-USDT market."""
    harness = Harness(ExchangeCore(), quote_scale)
    harness.ok(AddAsset("BTC", BTC_SCALE))
    harness.ok(AddAsset("USDT", quote_scale))
    harness.ok(market_command(quote_scale, **market))
    harness.changes()
    return harness


def fingerprint(core: ExchangeCore) -> bytes:
    """Everything the core holds except its clock (last seq and time advance on every command,
    rejected or not): assets, markets, balances, open orders in queue order, id counters."""
    snapshot = core.snapshot()
    snapshot.last_seq = 0
    snapshot.last_time = 0
    return msgspec.msgpack.encode(snapshot)
