"""Orders, trades, fills, balances and ledger: written by ``write_batch``, read by the queries."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from store_builders import (
    SYMBOL,
    T0,
    asset,
    balance,
    changes,
    journal,
    ledger_leg,
    market,
    order,
    trade,
)

from cambist.core.types import Liquidity, MarketStatus, OrderStatus, Side
from cambist.store.models_trading import LedgerEntryRow
from cambist.store.queries import TradingQueries
from cambist.store.trading import TradingStore


def test_assets_and_markets_keep_their_latest_state(store: TradingStore, queries: TradingQueries) -> None:
    store.write_batch(
        journal(1, 3),
        changes(3, assets=[asset("USDT", 6), asset("BTC")], markets=[market(), market("ETH-BTC")]),
    )
    store.write_batch(journal(4), changes(4, markets=[market(status=MarketStatus.HALTED)]))

    assert queries.list_assets() == [asset("BTC"), asset("USDT", 6)]
    assert queries.list_markets() == [market(status=MarketStatus.HALTED), market("ETH-BTC")]


def test_an_order_keeps_its_latest_state_and_is_only_found_by_its_owner(
    store: TradingStore, queries: TradingQueries
) -> None:
    store.write_batch(journal(1), changes(1, orders=[order(7, seq=1, client_order_id="bot-1")]))
    filled = order(7, seq=2, status=OrderStatus.FILLED, filled_quantity=100_000, client_order_id="bot-1")
    store.write_batch(journal(2), changes(2, orders=[filled]))

    assert queries.get_order(1, 7) == filled
    assert queries.get_order_by_client_id(1, "bot-1") == filled
    assert queries.get_order(2, 7) is None  # someone else's order is "not found"
    assert queries.get_order_by_client_id(2, "bot-1") is None
    assert queries.get_order(1, 8) is None


def _seed_orders(store: TradingStore) -> None:
    """25 orders of account 1 on two symbols, every third closed; 3 orders of account 2."""
    orders = [
        order(
            order_id,
            symbol="ETH-USDT" if order_id % 2 else SYMBOL,
            status=OrderStatus.CANCELED if order_id % 3 == 0 else OrderStatus.NEW,
        )
        for order_id in range(1, 26)
    ]
    orders += [order(order_id, account_id=2) for order_id in range(26, 29)]
    store.write_batch(journal(1, len(orders)), changes(len(orders), orders=orders))


def _all_pages(
    queries: TradingQueries, status: str, symbol: str | None = None, limit: int = 10
) -> tuple[list[int], int]:
    """Follow the cursors to the end: the order ids seen, and how many pages it took."""
    ids: list[int] = []
    cursor: int | None = None
    pages = 0
    while True:
        rows, cursor = queries.list_orders(1, symbol, status, limit, cursor)  # type: ignore[arg-type]
        ids += [row.order_id for row in rows]
        pages += 1
        if cursor is None:
            return ids, pages


def test_list_orders_pages_newest_first_with_filters(store: TradingStore, queries: TradingQueries) -> None:
    _seed_orders(store)

    all_ids, pages = _all_pages(queries, "all")
    assert all_ids == list(range(25, 0, -1)) and pages == 3
    open_ids, _ = _all_pages(queries, "open")
    assert open_ids == [i for i in range(25, 0, -1) if i % 3 != 0]
    closed_ids, _ = _all_pages(queries, "closed")
    assert closed_ids == [i for i in range(25, 0, -1) if i % 3 == 0]
    btc_open, _ = _all_pages(queries, "open", SYMBOL, limit=4)
    assert btc_open == [i for i in range(25, 0, -1) if i % 2 == 0 and i % 3 != 0]


def test_list_orders_exact_last_page_has_no_cursor(store: TradingStore, queries: TradingQueries) -> None:
    _seed_orders(store)
    rows, cursor = queries.list_orders(1, None, "all", 20)
    assert cursor == 6
    rows, cursor = queries.list_orders(1, None, "all", 5, cursor)
    assert [row.order_id for row in rows] == [5, 4, 3, 2, 1]
    assert cursor is None  # exactly 5 were left: no empty page to fetch
    assert queries.list_orders(3, None, "all", 10) == ([], None)


def test_list_orders_refuses_an_unknown_status(queries: TradingQueries) -> None:
    with pytest.raises(ValueError, match="status"):
        queries.list_orders(1, None, "pending", 10)  # type: ignore[arg-type]


def test_client_order_id_is_unique_per_account(store: TradingStore, queries: TradingQueries) -> None:
    store.write_batch(
        journal(1, 4),
        changes(
            4,
            orders=[
                order(1, client_order_id="same"),
                order(2, account_id=2, client_order_id="same"),  # another account may reuse it
                order(3),  # no client id, twice: NULLs never collide
                order(4),
            ],
        ),
    )
    with pytest.raises(IntegrityError):
        store.write_batch(journal(5), changes(5, orders=[order(5, client_order_id="same")]))
    assert queries.get_order_by_client_id(1, "same") == order(1, client_order_id="same")
    assert queries.get_order(1, 5) is None


def test_trades_give_public_trades_and_two_fills(store: TradingStore, queries: TradingQueries) -> None:
    trades = [
        trade(1, T0, 100, 10, maker=(1, 11), taker=(2, 21)),
        trade(2, T0 + 1, 101, 20, maker=(1, 11), taker=(3, 31), taker_side=Side.SELL),
        trade(3, T0 + 2, 102, 30, symbol="ETH-USDT", maker=(2, 22), taker=(1, 12)),
    ]
    store.write_batch(journal(1, 3), changes(3, trades=trades))

    assert queries.public_trades(SYMBOL, 10) == [trades[1], trades[0]]
    assert queries.public_trades(SYMBOL, 1) == [trades[1]]
    assert queries.last_trade("ETH-USDT") == trades[2]
    assert queries.last_trade("NO-SUCH") is None

    maker_fills = queries.order_fills(11)
    assert [(f.trade_id, f.side, f.liquidity, f.fee, f.account_id) for f in maker_fills] == [
        (1, Side.SELL, Liquidity.MAKER, 7, 1),  # the maker of a buy taker sold
        (2, Side.BUY, Liquidity.MAKER, 7, 1),
    ]
    taker_fill = queries.order_fills(31)[0]
    assert (taker_fill.side, taker_fill.liquidity, taker_fill.fee, taker_fill.fee_asset) == (
        Side.SELL,
        Liquidity.TAKER,
        11,
        "USDT",
    )
    assert (taker_fill.price, taker_fill.quantity, taker_fill.time) == (101, 20, T0 + 1)


def test_list_fills_pages_newest_first(store: TradingStore, queries: TradingQueries) -> None:
    trades = [
        trade(n, T0 + n, 100 + n, 1, symbol=SYMBOL if n % 2 else "ETH-USDT", maker=(1, 10 + n), taker=(2, 50))
        for n in range(1, 8)
    ]
    store.write_batch(journal(1), changes(1, trades=trades))

    seen: list[int] = []
    cursor: int | None = None
    while True:
        fills, cursor = queries.list_fills(1, None, 3, cursor)
        seen += [f.trade_id for f in fills]
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    btc, cursor = queries.list_fills(1, SYMBOL, 10)
    assert [f.trade_id for f in btc] == [7, 5, 3, 1] and cursor is None
    assert {f.account_id for f in queries.list_fills(2, None, 100)[0]} == {2}


def test_balances_keep_their_latest_values(store: TradingStore, queries: TradingQueries) -> None:
    store.write_batch(journal(1), changes(1, balances=[balance(1, "USDT", 100), balance(1, "BTC", 5, 1)]))
    store.write_batch(journal(2), changes(2, balances=[balance(1, "USDT", 40, 60), balance(2, "USDT", 9)]))

    assert queries.balances(1) == [balance(1, "BTC", 5, 1), balance(1, "USDT", 40, 60)]
    assert queries.balances(2) == [balance(2, "USDT", 9)]
    assert queries.balances(3) == []


def test_ledger_entries_are_appended_in_order(store: TradingStore) -> None:
    legs = [ledger_leg(1, -2, -500), ledger_leg(1, 1, 500), ledger_leg(2, -2, -7), ledger_leg(2, 1, 7)]
    store.write_batch(journal(1, 2), changes(2, ledger=legs[:2]))
    store.write_batch(journal(3), changes(3, ledger=legs[2:]))

    entries = LedgerEntryRow.__table__
    with store.engine.connect() as conn:
        rows = conn.execute(select(entries).order_by(entries.c.id)).all()
    assert [(r.posting_id, r.account_id, r.delta, r.bucket, r.ref) for r in rows] == [
        (leg.posting_id, leg.account_id, leg.delta, leg.bucket.value, leg.ref) for leg in legs
    ]


def test_values_near_two_to_the_62_round_trip_exactly(store: TradingStore, queries: TradingQueries) -> None:
    big = 2**62 - 1
    huge_order = order(big, price=big, quantity=big, filled_quantity=big - 1, seq=big)
    # One whole base unit at the biggest price: the quote amount is the biggest too.
    huge_trade = trade(big, T0, big, 10**8, maker=(big, big), taker=(2, 3))
    # And the biggest quantity at the smallest price, on another market (own klines).
    heavy_trade = trade(big - 1, T0, 1, big, symbol="ETH-USDT")
    store.write_batch(
        journal(1),
        changes(
            1,
            orders=[huge_order],
            trades=[huge_trade, heavy_trade],
            balances=[balance(big, "USDT", big, big - 3), balance(-2, "USDT", -big)],
            ledger=[ledger_leg(big, -2, -big), ledger_leg(big, big, big)],
        ),
    )

    assert queries.get_order(1, big) == huge_order
    assert queries.public_trades(SYMBOL, 1) == [huge_trade]
    assert queries.public_trades("ETH-USDT", 1) == [heavy_trade]
    assert queries.order_fills(big)[0].quote_quantity == big
    assert queries.balances(big) == [balance(big, "USDT", big, big - 3)]
    assert queries.balances(-2) == [balance(-2, "USDT", -big)]
    kline = queries.klines(SYMBOL, "1d", limit=1)[0]
    assert (kline.open, kline.high, kline.quote_volume) == (big, big, big)
    assert queries.klines("ETH-USDT", "1m", limit=1)[0].volume == big
    with store.engine.connect() as conn:
        deltas = conn.execute(select(LedgerEntryRow.delta).order_by(LedgerEntryRow.id)).scalars().all()
    assert deltas == [-big, big]


def test_a_failed_batch_leaves_nothing_written(store: TradingStore, queries: TradingQueries) -> None:
    store.write_batch(journal(1), changes(1, orders=[order(1, client_order_id="taken")]))
    before = store.load_snapshot()

    doomed = changes(
        4,
        assets=[asset("ETH")],
        markets=[market("ETH-USDT")],
        orders=[order(2), order(3, client_order_id="taken")],  # the second violates uniqueness
        trades=[trade(1, T0, 100, 1)],
        ledger=[ledger_leg(1, 1, 5), ledger_leg(1, -2, -5)],
        balances=[balance(1, "USDT", 5)],
    )
    with pytest.raises(IntegrityError):
        store.write_batch(journal(2, 3), doomed)

    assert store.load_snapshot() == before
    assert [seq for seq, _, _ in store.journal_since(0, 10)] == [1]
    assert queries.get_order(1, 2) is None
    assert queries.public_trades(SYMBOL, 10) == []
    assert queries.list_fills(1, None, 10) == ([], None)
    assert queries.klines(SYMBOL, "1m") == []
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LedgerEntryRow)).scalar_one() == 0


def test_a_repeated_journal_seq_fails_the_batch(store: TradingStore) -> None:
    store.write_batch(journal(1), changes(1))
    with pytest.raises(IntegrityError):
        store.write_batch(journal(1), changes(1, balances=[balance(1, "USDT", 1)]))
    assert store.load_snapshot()[0].balances == []
