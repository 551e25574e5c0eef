"""What every part of the facade needs: the runtime, and markets by Binance symbol."""

from __future__ import annotations

from typing import Any

from cambist.api.runtime import Runtime
from cambist.binance import errors
from cambist.binance.listen_keys import ListenKeys, MemoryListenKeys, RedisListenKeys
from cambist.binance.symbols import SymbolMap
from cambist.core.events import MarketView

_SYMBOLS_ATTRIBUTE = "_binance_symbols"
_LISTEN_KEYS_ATTRIBUTE = "_binance_listen_keys"


def listen_keys(runtime: Runtime) -> ListenKeys:
    """Shared by all gateways through Redis in distributed mode, in memory embedded. Calls
    block briefly on Redis: run them off the event loop (``runtime.read``)."""
    keys: ListenKeys | None = getattr(runtime, _LISTEN_KEYS_ATTRIBUTE, None)
    if keys is None:
        settings = runtime.settings
        if runtime.is_gateway and settings.redis_url:
            keys = RedisListenKeys.from_url(settings.redis_url, settings.redis_namespace)
        else:
            keys = MemoryListenKeys()
        setattr(runtime, _LISTEN_KEYS_ATTRIBUTE, keys)
    return keys


def symbols(runtime: Runtime) -> SymbolMap:
    """The runtime's symbol map, brought up to date with its markets."""
    symbol_map: SymbolMap | None = getattr(runtime, _SYMBOLS_ATTRIBUTE, None)
    if symbol_map is None:
        symbol_map = SymbolMap()
        setattr(runtime, _SYMBOLS_ATTRIBUTE, symbol_map)
    symbol_map.refresh(runtime.hub.markets)
    return symbol_map


def market(runtime: Runtime, binance_symbol: Any) -> MarketView:
    """The market of a ``symbol`` parameter: -1102 when missing, -1121 when unknown."""
    if not isinstance(binance_symbol, str) or not binance_symbol:
        raise errors.mandatory("symbol")
    name = symbols(runtime).market(binance_symbol.upper())
    view = runtime.hub.markets.get(name) if name is not None else None
    if view is None:
        raise errors.bad_symbol()
    return view
