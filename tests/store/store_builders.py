"""Hand-built core views and ``Changes`` for the store contract tests (no core needed)."""

from __future__ import annotations

from collections.abc import Sequence

from cambist.core.commands import CancelOrder, encode_command
from cambist.core.events import (
    AssetView,
    BalanceView,
    Changes,
    LedgerEntry,
    MarketView,
    OrderView,
    Trade,
)
from cambist.core.types import (
    OPEN_STATUSES,
    Bucket,
    MarketStatus,
    MarketType,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

SYMBOL = "BTC-USDT"
T0 = 1_700_000_000_000  # a fixed epoch for the tests, ms


def asset(name: str, scale: int = 8) -> AssetView:
    return AssetView(asset=name, scale=scale)


def market(
    symbol: str = SYMBOL, status: MarketStatus = MarketStatus.TRADING, taker_fee_ppm: int = 2_000
) -> MarketView:
    base, quote = symbol.split("-")
    return MarketView(
        symbol=symbol,
        base_asset=base,
        quote_asset=quote,
        tick_size=1_000_000,
        lot_size=1_000,
        min_quantity=1_000,
        min_notional=10_000_000,
        maker_fee_ppm=1_000,
        taker_fee_ppm=taker_fee_ppm,
        status=status,
        self_trade_prevention=SelfTradePrevention.EXPIRE_MAKER,
        market_type=MarketType.SPOT,
    )


def order(
    order_id: int,
    *,
    account_id: int = 1,
    symbol: str = SYMBOL,
    side: Side = Side.BUY,
    status: OrderStatus = OrderStatus.NEW,
    price: int | None = 50_000_000_000,
    quantity: int | None = 100_000,
    filled_quantity: int = 0,
    client_order_id: str | None = None,
    priority: int | None = None,
    seq: int | None = None,
) -> OrderView:
    seq = order_id if seq is None else seq
    return OrderView(
        order_id=order_id,
        account_id=account_id,
        symbol=symbol,
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        post_only=False,
        self_trade_prevention=SelfTradePrevention.EXPIRE_MAKER,
        client_order_id=client_order_id,
        price=price,
        quantity=quantity,
        quote_quantity=None,
        status=status,
        filled_quantity=filled_quantity,
        quote_filled=0,
        fee=0,
        fee_asset="USDT",
        hold_asset="USDT" if side is Side.BUY else "BTC",
        hold_remaining=5_000 if status in OPEN_STATUSES else 0,
        priority=seq if priority is None else priority,
        created_at=T0 + order_id,
        updated_at=T0 + seq,
        created_seq=order_id,
        updated_seq=seq,
    )


def trade(
    trade_id: int,
    time: int,
    price: int,
    quantity: int,
    *,
    symbol: str = SYMBOL,
    taker_side: Side = Side.BUY,
    maker: tuple[int, int] = (1, 101),  # (account_id, order_id)
    taker: tuple[int, int] = (2, 202),
    seq: int | None = None,
) -> Trade:
    return Trade(
        trade_id=trade_id,
        seq=trade_id if seq is None else seq,
        time=time,
        symbol=symbol,
        price=price,
        quantity=quantity,
        quote_quantity=price * quantity // 10**8,
        taker_side=taker_side,
        maker_order_id=maker[1],
        taker_order_id=taker[1],
        maker_account_id=maker[0],
        taker_account_id=taker[0],
        maker_fee=7,
        maker_fee_asset="USDT" if taker_side is Side.BUY else "BTC",
        taker_fee=11,
        taker_fee_asset="BTC" if taker_side is Side.BUY else "USDT",
    )


def balance(account_id: int, asset_name: str, available: int, locked: int = 0) -> BalanceView:
    return BalanceView(account_id=account_id, asset=asset_name, available=available, locked=locked)


def ledger_leg(posting_id: int, account_id: int, delta: int, *, asset_name: str = "USDT") -> LedgerEntry:
    return LedgerEntry(
        posting_id=posting_id,
        seq=posting_id,
        time=T0 + posting_id,
        account_id=account_id,
        asset=asset_name,
        bucket=Bucket.AVAILABLE,
        delta=delta,
        kind="credit",
        ref=f"credit-{posting_id}",
    )


def changes(
    last_seq: int,
    *,
    assets: Sequence[AssetView] = (),
    markets: Sequence[MarketView] = (),
    orders: Sequence[OrderView] = (),
    trades: Sequence[Trade] = (),
    ledger: Sequence[LedgerEntry] = (),
    balances: Sequence[BalanceView] = (),
    state_hash: str | None = None,
) -> Changes:
    return Changes(
        last_seq=last_seq,
        last_time=T0 + last_seq,
        state_hash=state_hash or f"hash-{last_seq}",
        next_order_id=1000 + last_seq,
        next_trade_id=2000 + last_seq,
        next_posting_id=3000 + last_seq,
        assets=list(assets),
        markets=list(markets),
        orders=list(orders),
        trades=list(trades),
        ledger=list(ledger),
        balances=list(balances),
        books_changed=[],
    )


def journal(first_seq: int, count: int = 1) -> list[tuple[int, int, str, bytes]]:
    """``count`` journaled commands from ``first_seq`` on, with real command payloads."""
    return [
        (seq, T0 + seq, "cancel_order", encode_command(CancelOrder(account_id=1, order_id=seq)))
        for seq in range(first_seq, first_seq + count)
    ]
