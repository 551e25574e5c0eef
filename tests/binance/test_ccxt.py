"""The Binance facade against the real, unmodified ccxt client (issue 4, part 5).

One live ``cambist serve --demo`` per module (its market maker keeps the books two-sided and
prints trades); ccxt 4.5.90, pointed at it by configuration only (binance-compat.md §4), calls
the facade exactly as it calls Binance, and every answer is checked by ccxt's own validators
shipped in its wheel (§5). Nothing is skipped when a part of the facade is missing: the test
fails with what ccxt raised.

- REST public: ccxt's ``test_load_markets``, ``test_fetch_ticker(s)``, ``test_fetch_order_book``,
  ``test_fetch_ohlcv``, ``test_fetch_trades``.
- REST private: ``test_fetch_balance``; the order scenarios, each order checked with
  ``test_order``; then ``test_fetch_orders``, ``test_fetch_closed_orders``, ``test_fetch_my_trades``
  on BTC/USDT (the IOC that expires trades ETH/USDT: ``test_order`` knows no ``expired``, §5 note 4).
- Errors: every rejection raises the ccxt class of §3.
- WebSocket: ccxt.pro's ``test_watch_*`` (40 s bound each), run side by side while another
  client trades; ``watch_orders`` validated on a copy with numeric fees (§5 note 6).
- Surface: by the server's request counter, ccxt called nothing outside ``/api/v3`` and got
  no 404 or 405; its sockets were ``/ws/<n>`` and ``/ws-api/v3`` only.

Stop orders (STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT) are not here: the facade lists them with issue 6.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import httpx
import pytest
import pytest_asyncio
from ccxt.test.exchange.base import test_shared_methods
from ccxt.test.exchange.base.test_balance import test_balance as validate_balance
from ccxt.test.exchange.base.test_order import test_order as validate_order

from .ccxt_support import (
    WATCH_TIMEOUT_S,
    Live,
    RequestCounts,
    async_test,
    dec,
    delta,
    http_requests,
    normalise_ws_order,
    pro_client,
    pro_test,
    rest_client,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.binance, pytest.mark.slow]

Client = ccxt_async.binance
BTC, ETH, ETHBTC = "BTC/USDT", "ETH/USDT", "ETH/BTC"
LOT = 0.001  # BTC: ten lots, about 65 USDT (the notional minimum is 5 USDT)
NO_TIMESTAMP = {"timestamp": True, "datetime": True}  # spot /depth has none (§2.3, §5 note 3)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def best_prices(live: Live, native_symbol: str) -> tuple[Decimal, Decimal]:
    """Best bid and ask from the native API, so order tests do not depend on the facade's /depth."""
    async with httpx.AsyncClient(base_url=live.base_url, timeout=10.0) as client:
        book = (await client.get(f"/api/v1/orderbook/{native_symbol}")).json()
    return Decimal(book["bids"][0][0]), Decimal(book["asks"][0][0])


def on_tick(price: Decimal, tick: str, up: bool) -> float:
    return float(price.quantize(Decimal(tick), rounding=ROUND_UP if up else ROUND_DOWN))


async def far_below(live: Live, native_symbol: str = "BTC-USDT") -> float:
    """A buy price that does not fill: 20 % under the best bid."""
    bid, _ = await best_prices(live, native_symbol)
    return on_tick(bid * Decimal("0.8"), "0.01", up=False)


async def through_the_book(live: Live, native_symbol: str = "BTC-USDT") -> float:
    """A buy price that fills at once: 2 % over the best ask."""
    _, ask = await best_prices(live, native_symbol)
    return on_tick(ask * Decimal("1.02"), "0.01", up=True)


def check_order(
    ex: Client, order: dict[str, Any], symbol: str = BTC, skip: dict[str, Any] | None = None
) -> None:
    validate_order(ex, skip or {}, "createOrder", order, symbol, ex.milliseconds())


def check_filled(order: dict[str, Any], amount: float) -> None:
    assert order["status"] == "closed", order
    assert dec(order["filled"]) == dec(amount), order
    assert dec(order["remaining"]) == 0, order
    assert order["average"] and dec(order["average"]) > 0, order
    assert order["cost"] and dec(order["cost"]) > 0, order


# ---------------------------------------------------------------- REST public


async def test_load_markets(ex: Client) -> None:
    await async_test("test_load_markets")(ex, {})
    assert {BTC, ETH, ETHBTC} <= set(ex.symbols), ex.symbols
    market = ex.market(BTC)
    assert market["id"] == "BTCUSDT" and market["spot"] and market["active"], market
    assert dec(market["precision"]["price"]) == dec("0.01"), market["precision"]
    assert dec(market["precision"]["amount"]) == dec("0.0001"), market["precision"]
    assert dec(market["limits"]["cost"]["min"]) == 5, market["limits"]
    # ccxt refuses client-side any type exchangeInfo does not list (§2.1, P1)
    assert {"LIMIT", "LIMIT_MAKER", "MARKET"} <= set(market["info"]["orderTypes"]), market["info"]


@pytest.mark.parametrize("symbol", [BTC, ETH, ETHBTC])
async def test_fetch_ticker(ex: Client, symbol: str) -> None:
    await async_test("test_fetch_ticker")(ex, {}, symbol)


async def test_fetch_tickers(ex: Client) -> None:
    all_tickers, one = await async_test("test_fetch_tickers")(ex, {}, BTC)
    assert {BTC, ETH, ETHBTC} <= set(all_tickers), list(all_tickers)
    assert list(one) == [BTC], list(one)


@pytest.mark.parametrize("symbol", [BTC, ETH, ETHBTC])
async def test_fetch_order_book(ex: Client, symbol: str) -> None:
    await async_test("test_fetch_order_book")(ex, NO_TIMESTAMP, symbol)
    book = await ex.fetch_order_book(symbol, 5)
    assert 0 < len(book["bids"]) <= 5 and 0 < len(book["asks"]) <= 5, book
    assert isinstance(book["nonce"], int), book  # lastUpdateId: what ccxt.pro syncs the stream on


async def test_fetch_ohlcv(ex: Client) -> None:
    await async_test("test_fetch_ohlcv")(ex, {}, BTC)
    candles = await ex.fetch_ohlcv(BTC, "1m", limit=5)
    assert 0 < len(candles) <= 5, candles
    assert [c[0] for c in candles] == sorted(c[0] for c in candles), candles


async def test_fetch_trades(ex: Client) -> None:
    # ccxt's test asks for 12000 trades (the facade clamps, P5) over /aggTrades
    await async_test("test_fetch_trades")(ex, {}, BTC)
    trades = await ex.fetch_trades(BTC, limit=10)
    assert 0 < len(trades) <= 10, trades


# ---------------------------------------------------------------- REST private: balance and orders


async def test_fetch_balance(ex: Client) -> None:
    await async_test("test_fetch_balance")(ex, {})
    balance = await ex.fetch_balance()
    for code in ("USDT", "BTC", "ETH"):
        assert dec(balance[code]["total"]) > 0, balance.get(code)


async def test_resting_limit_fetch_list_and_cancel(ex: Client, live: Live) -> None:
    price = await far_below(live)
    order = await ex.create_order(BTC, "limit", "buy", LOT, price)
    check_order(ex, order)
    assert order["status"] == "open" and dec(order["filled"]) == 0, order
    assert order["clientOrderId"] and order["clientOrderId"].startswith("x-"), order

    fetched = await ex.fetch_order(order["id"], BTC)
    check_order(ex, fetched)
    assert fetched["id"] == order["id"] and fetched["status"] == "open", fetched
    assert dec(fetched["price"]) == dec(price) and dec(fetched["amount"]) == dec(LOT), fetched
    by_client_id = await ex.fetch_order(None, BTC, {"clientOrderId": order["clientOrderId"]})
    assert by_client_id["id"] == order["id"], by_client_id

    await async_test("test_fetch_open_orders")(ex, {}, BTC)
    assert order["id"] in [o["id"] for o in await ex.fetch_open_orders(BTC)]

    canceled = await ex.cancel_order(order["id"], BTC)
    check_order(ex, canceled)
    assert canceled["id"] == order["id"] and canceled["status"] == "canceled", canceled
    assert (await ex.fetch_order(order["id"], BTC))["status"] == "canceled"
    assert order["id"] not in [o["id"] for o in await ex.fetch_open_orders(BTC)]


async def test_marketable_limit_fills_with_full_response(ex: Client, live: Live) -> None:
    order = await ex.create_order(BTC, "limit", "buy", LOT, await through_the_book(live))
    check_order(ex, order)
    check_filled(order, LOT)
    # newOrderRespType=FULL: the fills come back as trades, with their fees
    assert order["trades"], order
    assert sum(dec(t["amount"]) for t in order["trades"]) == dec(LOT), order["trades"]
    assert order["fee"] is not None and order["fee"]["currency"], order
    assert order["info"]["fills"], order["info"]


async def test_market_order_by_amount(ex: Client) -> None:
    order = await ex.create_order(BTC, "market", "sell", LOT)
    check_order(ex, order)
    check_filled(order, LOT)
    assert order["type"] == "market" and order["side"] == "sell", order


async def test_market_order_by_cost(ex: Client) -> None:
    """quoteOrderQty (P4): spend 20 USDT."""
    order = await ex.create_market_buy_order_with_cost(BTC, 20)
    check_order(ex, order)
    assert order["status"] == "closed", order
    assert 0 < dec(order["cost"]) <= 20, order
    assert dec(order["filled"]) > 0, order
    assert dec(order["info"]["origQuoteOrderQty"]) == 20, order["info"]


async def test_post_only_rests_as_limit_maker(ex: Client, live: Live) -> None:
    order = await ex.create_order(BTC, "limit", "buy", LOT, await far_below(live), {"postOnly": True})
    check_order(ex, order)
    assert order["status"] == "open" and order["postOnly"] is True, order
    assert order["info"]["type"] == "LIMIT_MAKER", order["info"]
    fetched = await ex.fetch_order(order["id"], BTC)
    assert fetched["postOnly"] is True and fetched["info"]["type"] == "LIMIT_MAKER", fetched["info"]
    canceled = await ex.cancel_order(order["id"], BTC)
    assert canceled["status"] == "canceled", canceled


async def test_post_only_that_would_take_is_rejected(ex: Client, live: Live) -> None:
    """-2010 "Order would immediately match and take." → OrderImmediatelyFillable; no order."""
    before = {o["id"] for o in await ex.fetch_orders(BTC)}
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        await ex.create_order(BTC, "limit", "buy", LOT, await through_the_book(live), {"postOnly": True})
    assert {o["id"] for o in await ex.fetch_orders(BTC)} == before


async def test_ioc_that_cannot_fill_expires(ex: Client, live: Live) -> None:
    # ETH/USDT: test_order knows no 'expired' (§5 note 4), and test_fetch_orders checks BTC/USDT
    price = await far_below(live, "ETH-USDT")
    order = await ex.create_order(ETH, "limit", "buy", 0.01, price, {"timeInForce": "IOC"})
    check_order(ex, order, ETH, skip={"status": True})
    assert order["status"] == "expired" and dec(order["filled"]) == 0, order
    assert order["timeInForce"] == "IOC", order
    assert (await ex.fetch_order(order["id"], ETH))["status"] == "expired"


async def test_fok_that_can_fill_fills(ex: Client, live: Live) -> None:
    order = await ex.create_order(
        BTC, "limit", "buy", LOT, await through_the_book(live), {"timeInForce": "FOK"}
    )
    check_order(ex, order)
    check_filled(order, LOT)
    assert order["timeInForce"] == "FOK", order


async def test_fetch_orders(ex: Client) -> None:
    await async_test("test_fetch_orders")(ex, {}, BTC)
    statuses = {o["status"] for o in await ex.fetch_orders(BTC)}
    assert {"closed", "canceled"} <= statuses, statuses


async def test_fetch_closed_orders(ex: Client) -> None:
    await async_test("test_fetch_closed_orders")(ex, {}, BTC)


async def test_fetch_my_trades(ex: Client) -> None:
    await async_test("test_fetch_my_trades")(ex, {}, BTC)
    trades = await ex.fetch_my_trades(BTC)
    assert {"buy", "sell"} <= {t["side"] for t in trades}, trades
    assert all(t["order"] for t in trades), trades


# ---------------------------------------------------------------- stop orders (after the listings)
# Cambist's core takes stop and take-profit orders; ccxt sends them as STOP_LOSS_LIMIT and
# TAKE_PROFIT_LIMIT (§1), and refuses client-side a type exchangeInfo does not list (P1).


@pytest.mark.parametrize(
    ("trigger", "binance_type", "factor"),
    [("stopLossPrice", "STOP_LOSS_LIMIT", "0.8"), ("takeProfitPrice", "TAKE_PROFIT_LIMIT", "1.25")],
)
async def test_untriggered_stop_limit_rests_and_cancels(
    ex: Client, live: Live, trigger: str, binance_type: str, factor: str
) -> None:
    """A sell whose trigger the market does not reach in the test: 20 % under the bid (stop
    loss) or 25 % over the ask (take profit), its limit one percent beyond the trigger."""
    bid, ask = await best_prices(live, "BTC-USDT")
    reference = bid if trigger == "stopLossPrice" else ask
    stop = Decimal(str(on_tick(reference * Decimal(factor), "0.01", up=False)))
    limit = on_tick(stop * Decimal("0.99"), "0.01", up=False)
    order = await ex.create_order(BTC, "limit", "sell", LOT, limit, {trigger: float(stop)})
    assert order["info"]["type"] == binance_type, order["info"]
    # P2: Binance answers an untriggered stop with workingTime -1, which ccxt takes as the timestamp
    faithful_p2 = order["info"].get("workingTime") == -1 and "time" not in order["info"]
    check_order(ex, order, skip=NO_TIMESTAMP if faithful_p2 else None)
    assert order["status"] == "open" and dec(order["triggerPrice"]) == stop, order

    fetched = await ex.fetch_order(order["id"], BTC)
    check_order(ex, fetched)
    assert fetched["status"] == "open" and dec(fetched["triggerPrice"]) == stop, fetched
    assert fetched["info"]["type"] == binance_type and dec(fetched["price"]) == dec(limit), fetched["info"]
    assert order["id"] in [o["id"] for o in await ex.fetch_open_orders(BTC)]

    canceled = await ex.cancel_order(order["id"], BTC)
    check_order(ex, canceled)
    assert canceled["status"] == "canceled", canceled


# ---------------------------------------------------------------- errors (§3)


def raw_order(symbol: str, quantity: str, price: str) -> dict[str, Any]:
    """Sent as is through ccxt's implicit API: ccxt's own rounding would hide the server's check."""
    return {
        "symbol": symbol,
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": quantity,
        "price": price,
    }


ErrorCase = Callable[[Client, Callable[..., Client], Live], Awaitable[Any]]


async def _unknown_symbol(ex: Client, fresh: Callable[..., Client], live: Live) -> Any:
    return await ex.public_get_ticker_24hr({"symbol": "NOPEUSDT"})


async def _unknown_symbol_depth(ex: Client, fresh: Callable[..., Client], live: Live) -> Any:
    return await ex.public_get_depth({"symbol": "NOPEUSDT"})


async def _fetch_unknown_order(ex: Client, fresh: Callable[..., Client], live: Live) -> Any:
    return await ex.fetch_order("987654321", BTC)


async def _cancel_unknown_order(ex: Client, fresh: Callable[..., Client], live: Live) -> Any:
    return await ex.cancel_order("987654321", BTC)


async def _insufficient_funds(ex: Client, fresh: Callable[..., Client], live: Live) -> Any:
    # 100 BTC at 80 % of the bid: millions of USDT, against 200 000 held
    return await ex.create_order(BTC, "limit", "buy", 100, await far_below(live))


async def _lot_size(ex: Client, fresh: Callable[..., Client], live: Live) -> Any:
    return await ex.private_post_order(raw_order("BTCUSDT", "0.00015", str(await far_below(live))))


async def _price_filter(ex: Client, fresh: Callable[..., Client], live: Live) -> Any:
    off_tick = f"{Decimal(str(await far_below(live))).quantize(Decimal('0.01'))}5"  # 0.001 off a 0.01 tick
    return await ex.private_post_order(raw_order("BTCUSDT", "0.001", off_tick))


async def _notional(ex: Client, fresh: Callable[..., Client], live: Live) -> Any:
    return await ex.private_post_order(raw_order("BTCUSDT", "0.0001", "1000.00"))  # 0.1 USDT < 5


async def _wrong_secret(ex: Client, fresh: Callable[..., Client], live: Live) -> Any:
    return await fresh(secret="0" * 64).fetch_balance()


async def _unknown_key(ex: Client, fresh: Callable[..., Client], live: Live) -> Any:
    return await fresh(apiKey="NoSuchKey" + "x" * 55).fetch_balance()


async def _stale_timestamp(ex: Client, fresh: Callable[..., Client], live: Live) -> Any:
    # nonce() = now - timeDifference: 60 s old, outside ccxt's recvWindow of 10 s → -1021
    return await fresh(options={"timeDifference": 60_000}).fetch_balance()


ERROR_CASES: dict[str, tuple[ErrorCase, type[Exception]]] = {
    "bad symbol (ticker)": (_unknown_symbol, ccxt.BadSymbol),
    "bad symbol (depth)": (_unknown_symbol_depth, ccxt.BadSymbol),
    "fetch unknown order": (_fetch_unknown_order, ccxt.OrderNotFound),
    "cancel unknown order": (_cancel_unknown_order, ccxt.OrderNotFound),
    "insufficient funds": (_insufficient_funds, ccxt.InsufficientFunds),
    "LOT_SIZE": (_lot_size, ccxt.InvalidOrder),
    "PRICE_FILTER": (_price_filter, ccxt.InvalidOrder),
    "NOTIONAL": (_notional, ccxt.BadRequest),
    "wrong secret": (_wrong_secret, ccxt.AuthenticationError),
    "unknown api key": (_unknown_key, ccxt.AuthenticationError),
    "timestamp outside recvWindow": (_stale_timestamp, ccxt.InvalidNonce),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
async def test_error_mapping(ex: Client, fresh_client: Callable[..., Client], live: Live, case: str) -> None:
    call, expected = ERROR_CASES[case]
    await ex.load_markets()
    balance_before = (await ex.fetch_balance())["total"]
    with pytest.raises(expected) as raised:
        await call(ex, fresh_client, live)
    if expected is ccxt.BadRequest:  # NOTIONAL is BadRequest, not InvalidOrder (P6)
        assert not isinstance(raised.value, ccxt.InvalidOrder), raised.value
    assert (await ex.fetch_balance())["total"] == balance_before, "a rejected request changed the balance"


def signed_query(live: Live, params: dict[str, str]) -> str:
    query = urllib.parse.urlencode({"timestamp": str(now_ms()), **params, "recvWindow": "10000"})
    signature = hmac.new(live.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


def ccxt_verdict(ex: Client, response: httpx.Response) -> Exception | None:
    """What ccxt's binance.handle_errors makes of a response ccxt did not send itself."""
    try:
        ex.handle_errors(
            response.status_code,
            response.reason_phrase,
            str(response.request.url),
            response.request.method,
            dict(response.headers),
            response.text,
            response.json(),
            dict(response.request.headers),
            response.request.content.decode(),
        )
    except Exception as error:
        return error
    return None


async def test_missing_api_key_is_2014(ex: Client, live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=10.0) as client:
        response = await client.get(f"/api/v3/account?{signed_query(live, {})}")
    assert response.status_code in (400, 401), response.text
    assert response.json()["code"] == -2014, response.text
    assert isinstance(ccxt_verdict(ex, response), ccxt.AuthenticationError), response.text


async def test_tampered_body_is_a_bad_signature(ex: Client, live: Live) -> None:
    body = signed_query(live, raw_order("BTCUSDT", "0.001", str(await far_below(live))))
    tampered = body.replace("quantity=0.001", "quantity=0.002")
    async with httpx.AsyncClient(base_url=live.base_url, timeout=10.0) as client:
        response = await client.post(
            "/api/v3/order",
            content=tampered,
            headers={"X-MBX-APIKEY": live.api_key, "Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code in (400, 401), response.text
    assert response.json()["code"] == -1022, response.text
    assert isinstance(ccxt_verdict(ex, response), ccxt.AuthenticationError), response.text
    assert not [o for o in await ex.fetch_open_orders(BTC) if dec(o["amount"]) == dec("0.002")]


# ---------------------------------------------------------------- WebSocket (ccxt.pro)


class Recorder:
    """Counts what one ccxt.pro watch method returned and raised. ccxt's watch tests swallow
    "temporary" failures (a NetworkError such as a refused handshake) and still pass after their
    15 s, so a watch test counts only when at least one update came back and was validated."""

    def __init__(self, client: Any, method: str) -> None:
        self.method = method
        self.results = 0
        self.errors: list[str] = []
        self.last: Any = None
        original = getattr(client, method)

        async def recorded(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await original(*args, **kwargs)
            except Exception as error:
                self.errors.append(f"{type(error).__name__}: {error}")
                raise
            self.results += 1
            self.last = result
            return result

        setattr(client, method, recorded)  # the test functions look it up on the instance


@dataclass
class Watch:
    client: Any
    recorder: Recorder
    task: asyncio.Task[Any]


@dataclass
class Watches:
    """Every watch test running side by side (each loops 15 s), each on its own ccxt.pro client,
    and a second client trading so the private streams have something to say."""

    runs: dict[str, Watch]
    trader: asyncio.Task[None] | None = None
    trader_log: list[str] = field(default_factory=list)

    async def result(self, name: str) -> Any:
        run = self.runs[name]
        try:
            await run.task
        except TimeoutError as error:
            raise AssertionError(
                f"{name}: ccxt.pro's test did not end within {WATCH_TIMEOUT_S} s; "
                f"{run.recorder.results} updates, errors {run.recorder.errors[-3:]}; "
                f"trader {self.trader_log[-3:]}"
            ) from error
        assert run.recorder.results > 0, (
            f"{name}: no update in 15 s (ccxt swallowed {len(run.recorder.errors)} errors: "
            f"{sorted(set(run.recorder.errors))[:3]}); trader {self.trader_log[-3:]}"
        )
        return run.recorder.last


async def watch_orders_validated(pro: Any, symbol: str) -> int:
    """ccxt.pro's test_watch_orders, validating a copy with numeric fees (§5 note 6)."""
    validated = 0
    ends = pro.milliseconds() + 15_000
    while pro.milliseconds() < ends:
        orders = await pro.watch_orders(symbol)
        test_shared_methods.assert_non_emtpy_array(pro, {}, "watchOrders", orders, symbol)
        now = pro.milliseconds()
        for order in orders:
            validate_order(pro, {}, "watchOrders", normalise_ws_order(order), symbol, now)
            validated += 1
        test_shared_methods.assert_timestamp_order(pro, "watchOrders", symbol, orders)
    return validated


async def trade_meanwhile(live: Live, watches: Watches, private: tuple[str, ...]) -> None:
    """Another client on the same account: market buys and sells of 0.001 BTC every 0.4 s until
    the private watches are done, with a resting order placed and canceled every few rounds."""
    client = rest_client(live)
    try:
        await asyncio.sleep(2.0)  # let the watches subscribe first
        deadline = time.monotonic() + WATCH_TIMEOUT_S
        side = "buy"
        round_ = 0
        while time.monotonic() < deadline and not all(watches.runs[n].task.done() for n in private):
            try:
                await client.create_order(BTC, "market", side, LOT)
                side = "sell" if side == "buy" else "buy"
                if round_ % 5 == 0:
                    resting = await client.create_order(BTC, "limit", "buy", LOT, await far_below(live))
                    await client.cancel_order(resting["id"], BTC)
                watches.trader_log.append(f"round {round_} ok")
            except Exception as error:
                watches.trader_log.append(f"round {round_}: {type(error).__name__}: {error}")
            round_ += 1
            await asyncio.sleep(0.4)
    finally:
        await client.close()


PRIVATE_WATCHES = ("watch_orders", "watch_my_trades", "watch_balance")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def watches(live: Live) -> AsyncIterator[Watches]:
    plan: dict[str, tuple[str, Callable[[Any], Awaitable[Any]]]] = {
        "watch_order_book": (
            "watch_order_book",
            lambda pro: pro_test("test_watch_order_book")(pro, NO_TIMESTAMP, BTC),
        ),
        "watch_trades": ("watch_trades", lambda pro: pro_test("test_watch_trades")(pro, {}, BTC)),
        "watch_ticker": ("watch_ticker", lambda pro: pro_test("test_watch_ticker")(pro, {}, BTC)),
        # with [ETH/USDT] and without symbols (!miniTicker@arr), side by side
        "watch_tickers": ("watch_tickers", lambda pro: pro_test("test_watch_tickers")(pro, {}, ETH)),
        "watch_ohlcv": ("watch_ohlcv", lambda pro: pro_test("test_watch_ohlcv")(pro, {}, BTC)),
        "watch_orders": ("watch_orders", lambda pro: watch_orders_validated(pro, BTC)),
        "watch_my_trades": ("watch_my_trades", lambda pro: pro_test("test_watch_my_trades")(pro, {}, BTC)),
        "watch_balance": ("watch_balance", lambda pro: pro_test("test_watch_balance")(pro, {}, "USDT")),
    }
    runs: dict[str, Watch] = {}
    for name, (method, test) in plan.items():
        client = pro_client(live)
        recorder = Recorder(client, method)
        task = asyncio.ensure_future(asyncio.wait_for(test(client), WATCH_TIMEOUT_S))
        runs[name] = Watch(client, recorder, task)
    run = Watches(runs)
    run.trader = asyncio.ensure_future(trade_meanwhile(live, run, PRIVATE_WATCHES))
    try:
        yield run
    finally:
        tasks = [watch.task for watch in runs.values()] + [run.trader]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for watch in runs.values():
            await watch.client.close()


async def test_watch_order_book(watches: Watches) -> None:
    book = await watches.result("watch_order_book")
    assert book["bids"] and book["asks"] and book["bids"][0][0] < book["asks"][0][0], book
    assert watches.runs["watch_order_book"].recorder.results > 1, "only the REST snapshot, no diff applied"


async def test_watch_trades(watches: Watches) -> None:
    await watches.result("watch_trades")


async def test_watch_ticker(watches: Watches) -> None:
    ticker = await watches.result("watch_ticker")
    assert ticker["symbol"] == BTC and ticker["last"], ticker


async def test_watch_tickers(watches: Watches) -> None:
    await watches.result("watch_tickers")
    tickers = watches.runs["watch_tickers"].client.tickers
    assert {BTC, ETH, ETHBTC} <= set(tickers), list(tickers)  # the all-markets stream too


async def test_watch_ohlcv(watches: Watches) -> None:
    candles = await watches.result("watch_ohlcv")
    assert candles and len(candles[-1]) == 6, candles


async def test_watch_orders(watches: Watches) -> None:
    await watches.result("watch_orders")
    assert watches.runs["watch_orders"].task.result() > 0


async def test_watch_my_trades(watches: Watches) -> None:
    trades = await watches.result("watch_my_trades")
    assert all(t["symbol"] == BTC and t["order"] for t in trades), trades


async def test_watch_balance(watches: Watches) -> None:
    balance = await watches.result("watch_balance")
    validate_balance(watches.runs["watch_balance"].client, {}, "watchBalance", balance)
    assert dec(balance["USDT"]["free"]) > 0 and dec(balance["BTC"]["free"]) > 0, balance


# ---------------------------------------------------------------- the surface ccxt touched (last)

HARNESS_ROUTES = ("/api/v1/", "/metrics", "/ready", "/openapi.json")  # this module's own calls


async def facade_templates(live: Live) -> set[str]:
    """The /api/v3 route templates, as the request counter labels them (full templates)."""
    async with httpx.AsyncClient(base_url=live.base_url, timeout=10.0) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    facade = {path for path in paths if path.startswith("/api/v3/")}
    assert facade, "the OpenAPI document lists no /api/v3 route"
    return facade


async def test_ccxt_stayed_on_the_implemented_surface(
    live: Live, requests_before: RequestCounts, watches: Watches
) -> None:
    await asyncio.gather(*(watch.task for watch in watches.runs.values()), return_exceptions=True)
    used = delta(await http_requests(live.base_url), requests_before)
    facade = await facade_templates(live)
    outside = {
        key: n for key, n in used.items() if key[1] not in facade and not key[1].startswith(HARNESS_ROUTES)
    }
    assert not outside, f"requests outside /api/v3 (method, route, status): {outside}"
    missing = {key: n for key, n in used.items() if key[2] in ("404", "405")}
    assert not missing, f"requests answered 404/405: {missing}"
    touched = sorted({f"{method} {route}" for method, route, _ in used if route in facade})
    assert "GET /api/v3/exchangeInfo" in touched, touched

    ws = live.ws_url
    urls = [url for watch in watches.runs.values() for url in watch.client.clients]
    assert urls, "ccxt.pro opened no socket"
    strays = [url for url in urls if not (url.startswith(ws + "/ws/") or url == ws + "/ws-api/v3")]
    assert not strays, f"sockets outside /ws/<n> and /ws-api/v3: {strays}"
