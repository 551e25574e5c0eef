"""Turn core views and store rows into API bodies: integer units become decimal strings."""

from __future__ import annotations

from collections.abc import Iterable

from cambist.api.money import fmt, fmt_optional
from cambist.api.schemas import FillResponse, MarketResponse, OrderResponse
from cambist.core.events import MarketView, OrderView, Trade
from cambist.core.numbers import POW10, format_rate_ppm
from cambist.core.types import Liquidity
from cambist.store.queries import Fill


class Scales:
    """Asset scales, read from the live reference data."""

    def __init__(self, assets: dict[str, int]) -> None:
        self._assets = assets

    def of(self, asset: str) -> int:
        return self._assets[asset]


def market_body(market: MarketView, assets: dict[str, int]) -> MarketResponse:
    base_scale, quote_scale = assets[market.base_asset], assets[market.quote_asset]
    return MarketResponse(
        symbol=market.symbol,
        base_asset=market.base_asset,
        quote_asset=market.quote_asset,
        status=market.status.value,
        tick_size=fmt(market.tick_size, quote_scale),
        lot_size=fmt(market.lot_size, base_scale),
        min_quantity=fmt(market.min_quantity, base_scale),
        min_notional=fmt(market.min_notional, quote_scale),
        maker_fee=format_rate_ppm(market.maker_fee_ppm),
        taker_fee=format_rate_ppm(market.taker_fee_ppm),
        type=market.market_type.value,
        base_scale=base_scale,
        quote_scale=quote_scale,
        self_trade_prevention=market.self_trade_prevention.value,
    )


def fills_from_trades(
    order_id: int, trades: Iterable[Trade], base_scale: int, quote_scale: int, fee_scale: int
) -> list[FillResponse]:
    fills = []
    for trade in trades:
        if trade.taker_order_id == order_id:
            liquidity, fee = Liquidity.TAKER, trade.taker_fee
        elif trade.maker_order_id == order_id:
            liquidity, fee = Liquidity.MAKER, trade.maker_fee
        else:
            continue
        fills.append(
            FillResponse(
                trade_id=trade.trade_id,
                price=fmt(trade.price, quote_scale),
                quantity=fmt(trade.quantity, base_scale),
                fee=fmt(fee, fee_scale),
                fee_asset=trade.taker_fee_asset if liquidity is Liquidity.TAKER else trade.maker_fee_asset,
                liquidity=liquidity.value,
                time=trade.time,
            )
        )
    return fills


def fills_from_rows(
    rows: Iterable[Fill], base_scale: int, quote_scale: int, assets: dict[str, int]
) -> list[FillResponse]:
    return [
        FillResponse(
            trade_id=row.trade_id,
            price=fmt(row.price, quote_scale),
            quantity=fmt(row.quantity, base_scale),
            fee=fmt(row.fee, assets[row.fee_asset]),
            fee_asset=row.fee_asset,
            liquidity=str(row.liquidity),
            time=row.time,
        )
        for row in rows
    ]


PERCENT_SCALE = 4  # a percentage with four decimals is a number of parts per million


def order_body(
    order: OrderView, market: MarketView, assets: dict[str, int], fills: list[FillResponse]
) -> OrderResponse:
    base_scale, quote_scale = assets[market.base_asset], assets[market.quote_asset]
    average = None
    if order.filled_quantity:
        # quote per whole base, rounded down to the quote asset's unit
        average = fmt(order.quote_filled * POW10[base_scale] // order.filled_quantity, quote_scale)
    remaining = None if order.quantity is None else order.quantity - order.filled_quantity
    return OrderResponse(
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side.value,
        type=order.order_type.value,
        time_in_force=order.time_in_force.value,
        post_only=order.post_only,
        self_trade_prevention=order.self_trade_prevention.value,
        status=order.status.value,
        price=fmt_optional(order.price, quote_scale),
        stop_price=fmt_optional(order.stop_price, quote_scale),
        quantity=fmt_optional(order.quantity, base_scale),
        quote_quantity=fmt_optional(order.quote_quantity, quote_scale),
        filled_quantity=fmt(order.filled_quantity, base_scale),
        remaining_quantity=fmt_optional(remaining, base_scale),
        average_price=average,
        quote_filled=fmt(order.quote_filled, quote_scale),
        fee=fmt(order.fee, assets[order.fee_asset]),
        fee_asset=order.fee_asset,
        fills=fills,
        created_at=order.created_at,
        updated_at=order.updated_at,
        expire_time=order.expire_time,
        trailing_offset=fmt_optional(order.trailing_offset, quote_scale),
        trailing_percent=fmt_optional(order.trailing_ppm, PERCENT_SCALE),
        activation_price=fmt_optional(order.activation_price, quote_scale),
        iceberg_quantity=fmt_optional(order.iceberg_quantity, base_scale),
        linked_order_id=order.linked_order_id,
    )
