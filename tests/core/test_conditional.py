"""Stop and take-profit orders: held at placement, off the book until a trade reaches their
stop, then a market or limit order that keeps its id; triggered exactly once, also across a
restart, and in a documented order when one trigger's trades reach others (cascades)."""

from __future__ import annotations

from cambist.core.checks import check_invariants
from cambist.core.commands import PlaceOrder
from cambist.core.events import Outcome
from cambist.core.exchange import ExchangeCore
from cambist.core.types import OrderStatus, OrderType, RejectCode, Side, TimeInForce

from .support import SYMBOL, Harness, make_harness

UNTRIGGERED, NEW, FILLED = OrderStatus.UNTRIGGERED, OrderStatus.NEW, OrderStatus.FILLED


def conditional(
    h: Harness,
    account: int,
    order_type: OrderType,
    side: str,
    stop: str,
    *,
    price: str | None = None,
    quantity: str | None = None,
    quote: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
) -> Outcome:
    return h.apply(
        PlaceOrder(
            account_id=account,
            symbol=SYMBOL,
            side=Side(side),
            order_type=order_type,
            quantity=None if quantity is None else h.btc(quantity),
            price=None if price is None else h.usdt(price),
            quote_quantity=None if quote is None else h.usdt(quote),
            time_in_force=tif,
            stop_price=h.usdt(stop),
        )
    )


def traded_at(h: Harness, price: str, quantity: str = "0.01") -> None:
    """Accounts 8 and 9 print a trade at ``price`` (8's sell may already meet a resting bid
    there; 9's IOC buy then finds nothing, and that is fine)."""
    h.fund(8, btc="10", usdt="10000000")
    h.fund(9, btc="10", usdt="10000000")
    sold = h.limit(8, "sell", price, quantity)
    assert sold.reject is None
    taken = h.limit(9, "buy", price, quantity, tif=TimeInForce.IOC)
    assert taken.reject is None
    printed = [t.price for t in (*sold.trades, *taken.trades)]
    assert h.usdt(price) in printed, printed


def status(h: Harness, order_id: int) -> OrderStatus | None:
    order = h.core.orders.get(order_id)
    return None if order is None else order.status


def final_view(h: Harness, order_id: int) -> object:
    for view in h.changes().orders:
        if view.order_id == order_id:
            return view
    return None


def placed_id(outcome: Outcome) -> int:
    assert outcome.reject is None, (outcome.reject, outcome.message)
    assert outcome.order is not None
    return outcome.order.order_id


def test_a_sell_stop_limit_waits_held_and_off_the_book_then_acts_when_a_trade_reaches_it() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    traded_at(h, "50000")
    outcome = conditional(h, 1, OrderType.STOP_LIMIT, "sell", "49000", price="48900", quantity="0.5")
    order_id = placed_id(outcome)
    assert outcome.order is not None and outcome.order.status is UNTRIGGERED
    assert outcome.order.stop_price == h.usdt("49000")
    assert h.balance(1, "BTC") == (h.btc("0.5"), h.btc("0.5"))  # held from placement
    assert h.core.depth(SYMBOL, 10)[1] == [] or all(
        p != h.usdt("48900") for p, _ in h.core.depth(SYMBOL, 10)[1]
    )
    check_invariants(h.core)

    traded_at(h, "49500")  # above the stop: still waiting
    assert status(h, order_id) is UNTRIGGERED
    h.fund(2, usdt="100000")
    assert h.limit(2, "buy", "49000", "0.2").reject is None  # a bid at the stop
    taker = h.limit(9, "sell", "49000", "0.01", tif=TimeInForce.IOC)  # prints 49000: triggers
    assert taker.trades
    # The stop-limit sold 0.19 into the remaining bid at 49000 (its limit is 48900), then rested.
    order = h.core.orders[order_id]
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.filled_quantity == h.btc("0.19")
    assert any(p == h.usdt("48900") for p, _ in h.core.depth(SYMBOL, 10)[1])
    check_invariants(h.core)


def test_a_stop_market_buy_spends_its_held_quote_when_the_price_rises_to_it() -> None:
    h = make_harness()
    h.fund(1, usdt="1000")
    traded_at(h, "100")
    order_id = placed_id(conditional(h, 1, OrderType.STOP_MARKET, "buy", "110", quote="500"))
    assert h.balance(1, "USDT") == (h.usdt("500"), h.usdt("500"))
    h.fund(3, btc="10")
    assert h.limit(3, "sell", "120", "10").reject is None
    h.changes()
    traded_at(h, "110")  # reaches the stop: buys 500 USDT worth at 120
    assert status(h, order_id) is None  # done
    view = final_view(h, order_id)
    assert view is not None and view.status is FILLED  # type: ignore[attr-defined]
    # 4.1666 BTC for 499.992 USDT; the 0.008 USDT that cannot buy another lot is released.
    assert view.filled_quantity == h.btc("4.1666")  # type: ignore[attr-defined]
    assert h.balance(1, "USDT") == (h.usdt("500.008"), 0)
    check_invariants(h.core)


def test_take_profits_trigger_in_the_other_direction() -> None:
    h = make_harness()
    h.fund(1, btc="1", usdt="10000")
    traded_at(h, "100")
    sell = placed_id(
        conditional(h, 1, OrderType.TAKE_PROFIT_LIMIT, "sell", "120", price="119", quantity="0.1")
    )
    buy = placed_id(conditional(h, 1, OrderType.TAKE_PROFIT_MARKET, "buy", "80", quote="50"))
    traded_at(h, "90")
    assert status(h, sell) is UNTRIGGERED and status(h, buy) is UNTRIGGERED
    traded_at(h, "120")
    assert status(h, sell) is NEW  # acted: rests at 119, nothing to sell into
    assert status(h, buy) is UNTRIGGERED
    traded_at(h, "80")
    assert status(h, buy) is None  # acted (and expired or filled: off the book either way)
    check_invariants(h.core)


def test_a_stop_on_the_wrong_side_of_the_last_price_is_refused() -> None:
    h = make_harness()
    h.fund(1, btc="1", usdt="10000")
    traded_at(h, "100")
    for order_type, side, stop, extra in (
        (OrderType.STOP_LIMIT, "sell", "100", {"price": "99", "quantity": "0.1"}),  # sell stop at/above last
        (OrderType.STOP_MARKET, "buy", "90", {"quote": "50"}),  # buy stop below last
        (OrderType.TAKE_PROFIT_LIMIT, "sell", "95", {"price": "95", "quantity": "0.1"}),
        (OrderType.TAKE_PROFIT_MARKET, "buy", "100", {"quote": "50"}),
    ):
        before = h.core.snapshot()
        outcome = conditional(h, 1, order_type, side, stop, **extra)  # type: ignore[arg-type]
        assert outcome.reject is RejectCode.STOP_WOULD_TRIGGER, (order_type, outcome)
        after = h.core.snapshot()
        assert (after.balances, after.open_orders) == (before.balances, before.open_orders)


def test_a_trade_that_jumps_over_the_stop_triggers_it() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    h.fund(3, usdt="100000")
    traded_at(h, "105")
    order_id = placed_id(conditional(h, 1, OrderType.STOP_MARKET, "sell", "100", quantity="0.1"))
    assert h.limit(3, "buy", "95", "1").reject is None
    h.fund(4, btc="1")
    taker = h.limit(4, "sell", "95", "0.5", tif=TimeInForce.IOC)  # 105 -> 95, never printing 100
    assert {t.price for t in taker.trades} == {h.usdt("95")}
    assert status(h, order_id) is None
    assert h.balance(1, "BTC") == (h.btc("0.9"), 0)
    check_invariants(h.core)


def test_cascades_trigger_in_placement_order_until_no_trade_reaches_another_stop() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    h.fund(2, btc="1")
    h.fund(3, usdt="100000")
    traded_at(h, "100")
    # Bids at 99, 97, 95: each stop's sale walks the price down into the next stop.
    for price in ("99", "97", "95"):
        assert h.limit(3, "buy", price, "0.1").reject is None
    second = placed_id(conditional(h, 2, OrderType.STOP_MARKET, "sell", "97", quantity="0.1"))
    first = placed_id(conditional(h, 1, OrderType.STOP_MARKET, "sell", "99", quantity="0.1"))
    h.changes()
    traded_at(h, "99", "0.05")  # reaches only the stop at 99
    trades = h.changes().trades
    takers = [t.taker_order_id for t in trades]
    # 99 triggers `first`, which sells into 99 (what is left) and 97; the print at 97 triggers
    # `second`, which sells at 95.
    assert takers.index(first) < takers.index(second)
    assert status(h, first) is None and status(h, second) is None
    assert h.balance(1, "BTC")[1] == 0 and h.balance(2, "BTC")[1] == 0
    check_invariants(h.core)


def test_orders_triggered_by_the_same_trade_act_in_the_order_they_were_placed() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    h.fund(2, btc="1")
    h.fund(3, usdt="100000")
    traded_at(h, "100")
    assert h.limit(3, "buy", "90", "0.05").reject is None
    early = placed_id(conditional(h, 2, OrderType.STOP_MARKET, "sell", "95", quantity="0.05"))
    late = placed_id(conditional(h, 1, OrderType.STOP_MARKET, "sell", "98", quantity="0.05"))
    h.changes()
    traded_at(h, "94")
    trades = [t for t in h.changes().trades if t.taker_order_id in (early, late)]
    assert [t.taker_order_id for t in trades] == [early]  # placed first: it got the only bid
    check_invariants(h.core)


def test_canceling_an_untriggered_order_releases_its_hold_and_it_never_acts() -> None:
    h = make_harness()
    h.fund(1, btc="1", usdt="1000")
    traded_at(h, "100")
    sell = placed_id(conditional(h, 1, OrderType.STOP_LIMIT, "sell", "90", price="89", quantity="0.3"))
    buy = placed_id(conditional(h, 1, OrderType.STOP_MARKET, "buy", "110", quote="200"))
    assert h.cancel(1, sell).reject is None
    assert h.balance(1, "BTC") == (h.btc("1"), 0)
    assert h.cancel_all(1).reject is None
    assert h.balance(1, "USDT") == (h.usdt("1000"), 0)
    traded_at(h, "80")
    traded_at(h, "120")
    assert status(h, sell) is None and status(h, buy) is None
    assert h.balance(1, "BTC") == (h.btc("1"), 0)
    check_invariants(h.core)


def test_a_fok_stop_limit_that_cannot_fill_when_triggered_expires_and_frees_its_hold() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    traded_at(h, "100")
    order_id = placed_id(
        conditional(h, 1, OrderType.STOP_LIMIT, "sell", "95", price="95", quantity="0.5", tif=TimeInForce.FOK)
    )
    h.changes()
    traded_at(h, "95")  # the only bid left is too small
    view = final_view(h, order_id)
    assert view is not None and view.status is OrderStatus.EXPIRED  # type: ignore[attr-defined]
    assert h.balance(1, "BTC") == (h.btc("1"), 0)
    check_invariants(h.core)


def test_pending_triggers_survive_a_restart_and_act_exactly_once() -> None:
    h = make_harness()
    h.fund(1, btc="1", usdt="1000")
    traded_at(h, "100")
    stop = placed_id(conditional(h, 1, OrderType.STOP_MARKET, "sell", "95", quantity="0.2"))
    take = placed_id(conditional(h, 1, OrderType.TAKE_PROFIT_MARKET, "buy", "90", quote="100"))
    # Rebuild from the snapshot, as the engine does from the store, and carry on with it.
    restored = ExchangeCore.restore(h.core.snapshot())
    assert restored.compute_state_hash() == h.core.state_hash()
    assert restored.markets[SYMBOL].last_price == h.usdt("100")
    check_invariants(restored)
    h.core = restored
    h.fund(3, usdt="10000")
    assert h.limit(3, "buy", "94", "1").reject is None
    traded_at(h, "94")
    assert status(h, stop) is None and status(h, take) is UNTRIGGERED
    traded_at(h, "94")
    assert h.balance(1, "BTC")[0] == h.btc("0.8")  # sold once, not twice
    # The whole journal replays to the same state.
    replayed = h.replay()
    assert replayed.compute_state_hash() == h.core.compute_state_hash()
    check_invariants(h.core)


def test_a_triggered_order_meets_its_own_resting_order_under_self_trade_prevention() -> None:
    h = make_harness()
    h.fund(1, btc="1", usdt="10000")
    traded_at(h, "100")
    own_bid = placed_id(h.limit(1, "buy", "96", "0.1"))
    stop = placed_id(conditional(h, 1, OrderType.STOP_MARKET, "sell", "97", quantity="0.1"))
    traded_at(h, "97")
    # expire_maker (the market's default): the own bid is expired, the stop finds nothing else.
    assert status(h, own_bid) is None and status(h, stop) is None
    assert h.balance(1, "BTC") == (h.btc("1"), 0)
    check_invariants(h.core)


def test_the_grid_of_a_market_with_untriggered_orders_cannot_change() -> None:
    h = make_harness()
    h.fund(1, btc="1")
    traded_at(h, "100")
    placed_id(conditional(h, 1, OrderType.STOP_MARKET, "sell", "95", quantity="0.2"))
    for order in list(h.core.orders.values()):  # leave only the untriggered order
        if order.status is not UNTRIGGERED:
            h.cancel(order.account_id, order.order_id)
    outcome = h.upsert(tick_size=h.usdt("1"))
    assert outcome.reject is RejectCode.INVALID_MARKET
